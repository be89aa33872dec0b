"""Type-checked access to a JSON object that may hold anything.

Validation runs on whatever a client sent (after patches, even lists where objects belong),
and must answer with field errors, never an exception. Every read goes through a
:class:`Checker`, which records a ``FieldValueTypeInvalid`` error and returns ``None`` when
the value has the wrong JSON type, so rule code only ever sees the types it expects.
"""

from __future__ import annotations

from typing import Any

from bosun.api.errors import FieldError, invalid

INT32_MAX = 2**31 - 1


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def type_error(path: str, value: Any, want: str) -> FieldError:
    shown = value if isinstance(value, str | int | float | bool) or value is None else _short(value)
    return FieldError("FieldValueTypeInvalid", path, f"must be of type {want}", shown, True)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class GoValue(dict):  # type: ignore[type-arg]
    """A dict that prints as Kubernetes (Go) prints it in messages, e.g. ``map[string]string{...}``.

    It stays a real dict so it serialises to JSON like the value it shows.
    """

    def __init__(self, data: dict[str, Any], text: str) -> None:
        super().__init__(data)
        self.text = text

    def __str__(self) -> str:
        return self.text


class GoList(list):  # type: ignore[type-arg]
    """A list that prints as Go prints a ``[]string`` in Kubernetes messages (``go_type`` names
    another string type, e.g. ``networking.PolicyType``)."""

    go_type = "string"

    def __str__(self) -> str:
        t = self.go_type
        return f"[]{t}{{" + ", ".join(f'"{v}"' for v in self) + "}" if self else f"[]{t}(nil)"


class GoPolicyTypes(GoList):
    go_type = "networking.PolicyType"


def go_string_map(m: dict[str, Any]) -> GoValue:
    body = ", ".join(f'"{k}":"{v}"' for k, v in sorted(m.items()))
    return GoValue(m, f"map[string]string{{{body}}}")


def go_selector(sel: dict[str, Any]) -> GoValue:
    ml = sel.get("matchLabels")
    labels = go_string_map(ml).text if isinstance(ml, dict) and ml else "map[string]string(nil)"
    me = sel.get("matchExpressions")
    if isinstance(me, list) and me:
        exprs = "[]v1.LabelSelectorRequirement{" + ", ".join(
            _go_requirement(r) for r in me if isinstance(r, dict)) + "}"
    else:
        exprs = "[]v1.LabelSelectorRequirement(nil)"
    return GoValue(sel, f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")


def _go_requirement(r: dict[str, Any]) -> str:
    vals = r.get("values")
    vtext = ("[]string{" + ", ".join(f'"{v}"' for v in vals) + "}") if isinstance(vals, list) and vals \
        else "[]string(nil)"
    return f'v1.LabelSelectorRequirement{{Key:"{r.get("key", "")}", Operator:"{r.get("operator", "")}", ' \
           f"Values:{vtext}}}"


class Checker:
    """Collects field errors; its getters type-check before handing a value back."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, err: FieldError) -> None:
        self.errors.append(err)

    def extend(self, errs: list[FieldError]) -> None:
        self.errors.extend(errs)

    def _get(self, parent: Any, name: str) -> Any:
        return parent.get(name) if isinstance(parent, dict) else None

    def obj(self, parent: Any, name: str, path: str) -> dict[str, Any] | None:
        v = parent.get(name) if isinstance(parent, dict) else None  # _get, inlined: the hot path
        if v is None:
            return None
        if not isinstance(v, dict):
            self.add(type_error(path, v, "object"))
            return None
        return v

    def lst(self, parent: Any, name: str, path: str) -> list[Any] | None:
        v = parent.get(name) if isinstance(parent, dict) else None  # _get, inlined: the hot path
        if v is None:
            return None
        if not isinstance(v, list):
            self.add(type_error(path, v, "array"))
            return None
        return v

    def text(self, parent: Any, name: str, path: str) -> str | None:
        v = parent.get(name) if isinstance(parent, dict) else None  # _get, inlined: the hot path
        if v is None:
            return None
        if not isinstance(v, str):
            self.add(type_error(path, v, "string"))
            return None
        return v

    def integer(self, parent: Any, name: str, path: str) -> int | None:
        v = parent.get(name) if isinstance(parent, dict) else None  # _get, inlined: the hot path
        if v is None:
            return None
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            self.add(type_error(path, v, "integer"))
            return None
        return v

    def boolean(self, parent: Any, name: str, path: str) -> bool | None:
        v = parent.get(name) if isinstance(parent, dict) else None  # _get, inlined: the hot path
        if v is None:
            return None
        if not isinstance(v, bool):
            self.add(type_error(path, v, "boolean"))
            return None
        return v

    def int_or_str(self, parent: Any, name: str, path: str) -> int | str | None:
        v = parent.get(name) if isinstance(parent, dict) else None  # _get, inlined: the hot path
        if v is None:
            return None
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, bool) or not isinstance(v, int | str):
            self.add(type_error(path, v, "integer or string"))
            return None
        return v

    def string_map(self, parent: Any, name: str, path: str) -> dict[str, str] | None:
        """A ``map[string]string`` such as labels or ConfigMap data."""
        m = self.obj(parent, name, path)
        if m is None:
            return None
        ok = True
        for k, v in m.items():
            if not isinstance(v, str):
                self.add(type_error(key(path, k), v, "string"))
                ok = False
        return m if ok else {k: v for k, v in m.items() if isinstance(v, str)}

    def objects(self, parent: Any, name: str, path: str) -> list[tuple[int, dict[str, Any]]]:
        """Items of a list of objects, each with its index; non-objects become errors."""
        items = self.lst(parent, name, path)
        out: list[tuple[int, dict[str, Any]]] = []
        for i, item in enumerate(items or []):
            if isinstance(item, dict):
                out.append((i, item))
            else:
                self.add(type_error(index(path, i), item, "object"))
        return out

    def strings(self, parent: Any, name: str, path: str) -> list[str]:
        items = self.lst(parent, name, path)
        out: list[str] = []
        for i, item in enumerate(items or []):
            if isinstance(item, str):
                out.append(item)
            else:
                self.add(type_error(index(path, i), item, "string"))
        return out

    # Common numeric rules, with Kubernetes' wording.
    def non_negative(self, parent: Any, name: str, path: str) -> int | None:
        v = self.integer(parent, name, path)
        if v is not None and v < 0:
            self.add(invalid(path, v, "must be greater than or equal to 0"))
        return v

    def positive(self, parent: Any, name: str, path: str) -> int | None:
        v = self.integer(parent, name, path)
        if v is not None and v <= 0:
            self.add(invalid(path, v, "must be greater than 0"))
        return v

    def in_range(self, parent: Any, name: str, path: str, lo: int, hi: int) -> int | None:
        v = self.integer(parent, name, path)
        if v is not None and not lo <= v <= hi:
            self.add(invalid(path, v, f"must be between {lo} and {hi}, inclusive"))
        return v
