"""Label and field selectors, parsed once per list/watch and matched against every object.

The grammar and the error texts follow Kubernetes (apimachinery's labels and fields
packages) so that ``kubectl get -l ...`` and ``--field-selector`` behave and fail the same
way against Bosun. Matching is plain dict/set work with no regex at match time, because a
list of 10,000 objects calls ``matches`` 10,000 times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from bosun.api.registry import Resource


class SelectorError(ValueError):
    """A selector the user wrote that cannot be parsed or is not supported (HTTP 400)."""


# ---------------------------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def _label_key_errors(key: str) -> list[str]:
    prefix, sep, name = key.rpartition("/")
    errs: list[str] = []
    if sep:
        if not prefix:
            errs.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            errs.append("prefix part must be no more than 253 characters")
        elif not _DNS1123_SUBDOMAIN_RE.match(prefix):
            errs.append(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character"
            )
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not _NAME_RE.match(name):
        errs.append(_NAME_MSG)
    return errs


def _validate_key(key: str) -> None:
    errs = _label_key_errors(key)
    if errs:
        raise SelectorError(f'key: Invalid value: "{key}": {"; ".join(errs)}')


def _validate_value(value: str, index: int) -> None:
    if value == "":
        return
    if len(value) > 63:
        raise SelectorError(
            f'values[{index}][{value}]: Invalid value: "{value}": must be no more than 63 characters'
        )
    if not _NAME_RE.match(value):
        raise SelectorError(f'values[{index}][{value}]: Invalid value: "{value}": {_VALUE_MSG}')


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause: ``key op values``. ``op`` is one of Kubernetes' selection operators."""

    key: str
    op: str  # "in", "notin", "=", "==", "!=", "exists", "!", "gt", "lt"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op in ("=", "==", "in"):
            v = labels.get(self.key)
            return v is not None and v in self.values
        if op in ("!=", "notin"):
            v = labels.get(self.key)
            return v is None or v not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        v = labels.get(self.key)
        if v is None:
            return False
        try:
            have = int(v)
        except ValueError:
            return False
        want = int(next(iter(self.values)))
        return have > want if op == "gt" else have < want

    def __str__(self) -> str:
        vals = sorted(self.values)
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(vals)})"
        sym = {"gt": ">", "lt": "<"}.get(self.op, self.op)
        return f"{self.key}{sym}{vals[0] if vals else ''}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements. ``nothing`` is the selector that matches no object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        lab: Mapping[str, str] = labels or {}
        for r in self.requirements:
            if not r.matches(lab):
                return False
        return True

    @property
    def empty(self) -> bool:
        """True when the selector matches everything (no requirement at all)."""
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        """Kubernetes' canonical string form (used in tables' SELECTOR column)."""
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)

# Lexer: Kubernetes' scanner treats these characters specially; everything else that is not
# whitespace is part of an identifier.
_SPECIAL = frozenset("=!(),><")
_WS = frozenset(" \t\r\n")

_IDENT, _EOS, _OPEN, _CLOSE, _COMMA, _NOT, _EQ, _DEQ, _NEQ, _GT, _LT, _IN, _NOTIN = range(13)


def _lex(s: str) -> list[tuple[int, str]]:
    toks: list[tuple[int, str]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in _WS:
            i += 1
            continue
        if c in _SPECIAL:
            two = s[i:i + 2]
            if two == "==":
                toks.append((_DEQ, two))
                i += 2
            elif two == "!=":
                toks.append((_NEQ, two))
                i += 2
            else:
                kind = {"=": _EQ, "!": _NOT, "(": _OPEN, ")": _CLOSE, ",": _COMMA, ">": _GT, "<": _LT}[c]
                toks.append((kind, c))
                i += 1
            continue
        j = i
        while j < n and s[j] not in _SPECIAL and s[j] not in _WS:
            j += 1
        word = s[i:j]
        toks.append(({"in": _IN, "notin": _NOTIN}.get(word, _IDENT), word))
        i = j
    toks.append((_EOS, ""))
    return toks


class _LabelParser:
    """Recursive-descent parser mirroring apimachinery's labels.Parser (same error texts)."""

    def __init__(self, s: str) -> None:
        self.toks = _lex(s)
        self.pos = 0

    def _peek(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.toks[self.pos]
        if values and tok in (_IN, _NOTIN):
            return _IDENT, lit
        return tok, lit

    def _next(self, values: bool = True) -> tuple[int, str]:
        out = self._peek(values)
        if self.pos < len(self.toks) - 1:
            self.pos += 1
        return out

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok in (_IDENT, _NOT):
                try:
                    reqs.append(self._requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                t, lit = self._next()
                if t == _EOS:
                    return reqs
                if t == _COMMA:
                    t2, l2 = self._peek()
                    if t2 not in (_IDENT, _NOT):
                        raise SelectorError(f"found '{l2}', expected: identifier after ','")
                    continue
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            if tok == _EOS:
                return reqs
            raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        tok, lit = self._next()
        negated = tok == _NOT
        if negated:
            tok, lit = self._next()
        if tok != _IDENT:
            raise SelectorError(f"found '{lit}', expected: identifier")
        _validate_key(lit)
        key = lit
        nt, _ = self._peek()
        if nt in (_EOS, _COMMA):
            return Requirement(key, "!" if negated else "exists")
        if negated:
            # '!' only applies to a bare key; what follows is the caller's syntax error.
            return Requirement(key, "!")
        op_tok, op_lit = self._next(values=False)
        ops = {_IN: "in", _NOTIN: "notin", _EQ: "=", _DEQ: "==", _NEQ: "!=", _GT: "gt", _LT: "lt"}
        op = ops.get(op_tok)
        if op is None:
            raise SelectorError(f"found '{op_lit}', expected: in, notin, =, ==, !=, gt, lt")
        values = self._set_values() if op in ("in", "notin") else self._exact_value()
        return _make_requirement(key, op, values)

    def _set_values(self) -> list[str]:
        tok, lit = self._next()
        if tok != _OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok == _CLOSE:
            self._next()
            return [""]
        if tok not in (_IDENT, _COMMA):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        out: list[str] = []
        while True:  # apimachinery's parseIdentifiersList, gaps read as the empty value
            tok, lit = self._next()
            if tok == _IDENT:
                out.append(lit)
                t2, l2 = self._peek()
                if t2 == _COMMA:
                    continue
                if t2 == _CLOSE:
                    break
                raise SelectorError(f"found '{l2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not out:
                    out.append("")
                t2, _ = self._peek()
                if t2 == _CLOSE:
                    out.append("")
                    break
                if t2 == _COMMA:
                    self._next()
                    out.append("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")
        tok, lit = self._next()
        if tok != _CLOSE:
            raise SelectorError(f"found '{lit}', expected: ')'")
        return sorted(set(out))

    def _exact_value(self) -> list[str]:
        tok, _ = self._peek()
        if tok in (_EOS, _COMMA):
            return [""]
        tok, lit = self._next()
        if tok == _IDENT:
            return [lit]
        raise SelectorError(f"found '{lit}', expected: identifier")


def _bad_values(values: list[str], why: str) -> SelectorError:
    return SelectorError(f"values: Invalid value: {values}: {why}")


def _make_requirement(key: str, op: str, values: list[str]) -> Requirement:
    """Validate like apimachinery's NewRequirement."""
    _validate_key(key)
    if op in ("in", "notin") and not values:
        raise _bad_values(values, "for 'in', 'notin' operators, values set can't be empty")
    if op in ("=", "==", "!=") and len(values) != 1:
        raise _bad_values(values, "exact-match compatibility requires one single value")
    if op in ("exists", "!") and values:
        raise _bad_values(values, "values set must be empty for exists and does not exist")
    if op in ("gt", "lt"):
        if len(values) != 1:
            raise _bad_values(values, "for 'Gt', 'Lt' operators, exactly one value is required")
        try:
            int(values[0])
        except ValueError:
            raise SelectorError(
                f'values[0]: Invalid value: "{values[0]}": '
                "for 'Gt', 'Lt' operators, the value must be an integer"
            ) from None
    for i, v in enumerate(values):
        _validate_value(v, i)
    return Requirement(key, op, frozenset(values))


def parse_label_selector(s: str) -> LabelSelector:
    """Parse the ``labelSelector`` query string; an empty string selects everything."""
    if not s or not s.strip():
        return EVERYTHING
    reqs = _LabelParser(s).parse()
    reqs.sort(key=lambda r: r.key)
    return LabelSelector(tuple(reqs))


_EXPR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def label_selector_from_dict(sel: dict[str, Any] | None) -> LabelSelector:
    """Convert a metav1.LabelSelector: None selects nothing, ``{}`` selects everything."""
    if sel is None:
        return NOTHING
    match_labels = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []
    if not match_labels and not exprs:
        return EVERYTHING
    reqs: list[Requirement] = []
    for k, v in match_labels.items():
        reqs.append(_make_requirement(str(k), "=", [str(v)]))
    for e in exprs:
        op = _EXPR_OPS.get(e.get("operator", ""))
        if op is None:
            raise SelectorError(f'"{e.get("operator", "")}" is not a valid label selector operator')
        reqs.append(_make_requirement(str(e.get("key", "")), op, [str(x) for x in e.get("values") or []]))
    reqs.sort(key=lambda r: r.key)
    return LabelSelector(tuple(reqs))


def label_selector_text(sel: dict[str, Any] | None) -> str:
    """A metav1.LabelSelector as the query string kubectl would send (``app=web,tier in (a,b)``),
    which is what Scale.status.selector and the metrics APIs' labelSelector carry."""
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# ---------------------------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    op: str  # "=", "==" or "!="
    value: str
    getter: Callable[[dict[str, Any]], str] = dc_field(compare=False, repr=False, default=lambda o: "")


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A conjunction of field terms; a missing field reads as the empty string, as in Kubernetes."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        for r in self.requirements:
            have = r.getter(obj)
            if (have == r.value) == (r.op == "!="):
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.requirements

    def fields(self) -> list[str]:
        return [r.field for r in self.requirements]

    def __str__(self) -> str:
        return ",".join(f"{r.field}{r.op}{_escape(r.value)}" for r in self.requirements)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def path_getter(path: str) -> Callable[[dict[str, Any]], str]:
    """Build the reader for a dotted path once, so matching is only dict lookups. Values are
    printed as Kubernetes prints them for field selectors (``true``, not ``True``); a missing
    field reads as ""."""
    parts = tuple(path.split("."))

    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for p in parts:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(p)
            if cur is None:
                return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return cur if isinstance(cur, str) else str(cur)

    return get


def _bool_getter(path: str) -> Callable[[dict[str, Any]], str]:
    inner = path_getter(path)
    return lambda obj: inner(obj) or "false"


def _int_getter(path: str) -> Callable[[dict[str, Any]], str]:
    inner = path_getter(path)
    return lambda obj: inner(obj) or "0"


def _pod_ips(obj: dict[str, Any]) -> str:
    st = obj.get("status") or {}
    ips = st.get("podIPs") or []
    if ips and isinstance(ips[0], dict):
        return str(ips[0].get("ip", ""))
    return str(st.get("podIP") or "")


def _split_terms(s: str) -> list[str]:
    """Split on commas not escaped with a backslash (the escape stays for the term parser)."""
    terms: list[str] = []
    start, i, n = 0, 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == ",":
            terms.append(s[start:i])
            start = i + 1
        i += 1
    terms.append(s[start:])
    return terms


def _unescape(v: str, whole: str) -> str:
    out: list[str] = []
    i, n = 0, len(v)
    while i < n:
        c = v[i]
        if c == "\\":
            if i + 1 >= n or v[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector: '{whole}': invalid escape sequence")
            out.append(v[i + 1])
            i += 2
            continue
        if c in ",=":
            raise SelectorError(f"invalid field selector: '{whole}': unescaped {c} in value")
        out.append(c)
        i += 1
    return "".join(out)


def _find_op(term: str) -> tuple[int, str] | None:
    """First unescaped operator in a term, preferring '!=' then '==' then '='."""
    i, n = 0, len(term)
    while i < n:
        c = term[i]
        if c == "\\":
            i += 2
            continue
        if c == "!" and term.startswith("!=", i):
            return i, "!="
        if c == "=":
            return (i, "==") if term.startswith("==", i) else (i, "=")
        i += 1
    return None


def parse_field_selector(s: str) -> FieldSelector:
    """Parse the ``fieldSelector`` query string; an empty string selects everything."""
    if not s:
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for term in _split_terms(s):
        if not term:
            continue
        found = _find_op(term)
        if found is None:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{term}'")
        at, op = found
        name = term[:at]
        value = _unescape(term[at + len(op):], s)
        reqs.append(FieldRequirement(name, op, value, _getter_for(name)))
    return FieldSelector(tuple(reqs))


_SPECIAL_GETTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "spec.unschedulable": _bool_getter("spec.unschedulable"),
    "spec.hostNetwork": _bool_getter("spec.hostNetwork"),
    "status.podIPs": _pod_ips,
    "status.replicas": _int_getter("status.replicas"),
    "status.successful": _int_getter("status.succeeded"),
}


def _getter_for(name: str) -> Callable[[dict[str, Any]], str]:
    return _SPECIAL_GETTERS.get(name) or path_getter(name)


_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})

# Field labels each kind accepts, beyond metadata.name and metadata.namespace (Kubernetes'
# per-kind GetAttrs / field label conversion functions).
_KIND_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "Pod"): frozenset({
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName",
    }),
    ("", "Event"): frozenset({
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
    }),
    ("", "Secret"): frozenset({"type"}),
    ("", "Node"): frozenset({"spec.unschedulable"}),
    ("", "Namespace"): frozenset({"status.phase"}),
    ("", "Service"): frozenset({"spec.clusterIP", "spec.type"}),
    ("apps", "ReplicaSet"): frozenset({"status.replicas"}),
    ("batch", "Job"): frozenset({"status.successful"}),
    ("", "PersistentVolumeClaim"): frozenset(),
}


def check_field_selector(resource: Resource, sel: FieldSelector) -> None:
    """Refuse field labels the kind does not index, with Kubernetes' message."""
    allowed = (resource.custom.selectable_fields() if resource.custom is not None
               else _KIND_FIELDS.get((resource.group, resource.kind), frozenset()))
    for r in sel.requirements:
        if r.field in _META_FIELDS or r.field in allowed:
            continue
        raise SelectorError(f"field label not supported: {r.field}")


__all__ = [
    "EVERYTHING",
    "NOTHING",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "check_field_selector",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
]
