"""A custom resource's structural schema at work: pruning, defaulting and validation.

Kubernetes stores custom resources as JSON and holds them to the ``openAPIV3Schema`` of
their CustomResourceDefinition's version: fields the schema does not declare are dropped
(unless ``x-kubernetes-preserve-unknown-fields``), ``default`` values are filled in, and
every value is checked with the messages of kube-openapi's validator, which users (and
tools that parse them) read: ``spec.replicas in body must be of type integer: "string"``.
The messages are why this is written here rather than taken from a JSON-schema library:
those report the same rules in other words. CEL rules are in :mod:`bosun.api.crd.cel`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import re
from collections.abc import Callable
from datetime import date
from functools import cache
from typing import Any

import orjson

from bosun.api import errors
from bosun.api.errors import FieldError

Schema = dict[str, Any]
# Checks a value against the CEL rules of one schema node (path, value, old value).
RuleCheck = Callable[[str, Schema, Any, Any], list[FieldError]]

# Fields every object's root keeps whatever the schema says (and embedded resources too).
_ROOT_FIELDS = ("apiVersion", "kind", "metadata")
_JSON_TYPES = {
    "string": (str,), "boolean": (bool,), "object": (dict,), "array": (list,),
    "integer": (int,), "number": (int, float),
}


def json_type(v: Any) -> str:
    """The JSON type name kube-openapi's messages use for a value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _is_type(v: Any, typ: str) -> bool:
    if isinstance(v, bool):
        return typ == "boolean"
    if typ == "number" and isinstance(v, float):
        return True
    if typ == "integer" and isinstance(v, float):
        return v.is_integer()
    return isinstance(v, _JSON_TYPES.get(typ, (object,)))


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _props(s: Schema) -> dict[str, Schema]:
    p = s.get("properties")
    return p if isinstance(p, dict) else {}


def _additional(s: Schema) -> Schema | None:
    a = s.get("additionalProperties")
    return a if isinstance(a, dict) else None


def _items(s: Schema) -> Schema | None:
    i = s.get("items")
    return i if isinstance(i, dict) else None


def _parses(fn: Callable[[str], object]) -> Callable[[str], bool]:
    def check(v: str) -> bool:
        try:
            fn(v)
        except (ValueError, binascii.Error):
            return False
        return True

    return check


_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}"
                       r"[A-Za-z0-9])?)*$")
# The string formats kube-openapi checks that are in common use in CRDs (others are accepted).
_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda v: bool(_DATE_TIME.match(v)),
    "date": _parses(date.fromisoformat),
    "uuid": lambda v: bool(_UUID.match(v)),
    "ipv4": _parses(ipaddress.IPv4Address),
    "ipv6": _parses(ipaddress.IPv6Address),
    "cidr": _parses(lambda v: ipaddress.ip_network(v, strict=False)),
    "hostname": lambda v: bool(_HOSTNAME.match(v)),
    "byte": _parses(lambda v: base64.b64decode(v, validate=True)),
}


# ---- pruning ------------------------------------------------------------------------------


def prune(obj: Any, schema: Schema, *, root: bool = True, path: str = "") -> list[str]:
    """Drop what ``schema`` does not declare, in place; the dropped fields' paths."""
    dropped: list[str] = []
    _prune(obj, schema, path, root, dropped)
    return dropped


def _prune(v: Any, s: Schema, path: str, keep_meta: bool, out: list[str]) -> None:
    if isinstance(v, dict):
        props = _props(s)
        extra = _additional(s)
        preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = keep_meta or s.get("x-kubernetes-embedded-resource") is True
        for key in list(v):
            if embedded and key in _ROOT_FIELDS and key not in props:
                continue
            if key in props:
                _prune(v[key], props[key], _child(path, key), False, out)
            elif extra is not None:
                _prune(v[key], extra, _child(path, key), False, out)
            elif not preserve and s.get("additionalProperties") is not True:
                del v[key]
                out.append(_child(path, key))
    elif isinstance(v, list):
        items = _items(s)
        if items is not None:
            for i, item in enumerate(v):
                _prune(item, items, f"{path}[{i}]", False, out)


# ---- defaulting ---------------------------------------------------------------------------


def default(v: Any, s: Schema) -> None:
    """Fill in the ``default`` of every absent property of the objects present, in place
    (and of items and map values), as the API server does on every write and read."""
    if isinstance(v, dict):
        props = _props(s)
        for key, sub in props.items():
            if key not in v and "default" in sub:
                v[key] = copy.deepcopy(sub["default"])
            elif v.get(key, 0) is None and "default" in sub and not sub.get("nullable"):
                v[key] = copy.deepcopy(sub["default"])
        for key, item in v.items():
            if key in props:
                default(item, props[key])
            elif (extra := _additional(s)) is not None:
                default(item, extra)
    elif isinstance(v, list) and (items := _items(s)) is not None:
        for item in v:
            default(item, items)


# ---- validation ---------------------------------------------------------------------------


@cache
def _pattern(p: str) -> re.Pattern[str] | None:
    try:
        return re.compile(p)
    except re.error:
        return None


def _dup_key(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()


def validate(v: Any, s: Schema, path: str, rules: RuleCheck | None = None, old: Any = None) -> list[FieldError]:
    """Every error of ``v`` against ``s``, then (when no value has the wrong type, as
    Kubernetes does) those of the CEL ``rules`` (``old``: the stored object, for transition
    rules). ObjectMeta is not checked here: those are the generic metadata rules."""
    out: list[FieldError] = []
    _validate(v, s, path, out, None, None)
    if rules is None:
        return out
    if any(e.type == "FieldValueTypeInvalid" for e in out):
        out.append(errors.invalid(path or "<nil>", "", "some validation rules were not checked because the "
                                  "object was invalid; correct the existing errors to complete validation"))
        return out
    _validate(v, s, path, out, rules, old)
    return out


def _type_error(path: str, v: Any, typ: str) -> FieldError:
    actual = json_type(v)
    return FieldError("FieldValueTypeInvalid", path, f'{path or "body"} in body must be of type {typ}: "{actual}"',
                      actual, True)


def _validate(v: Any, s: Schema, path: str, out: list[FieldError], rules: RuleCheck | None, old: Any) -> None:
    """One pass over the value: the schema's checks, or with ``rules`` only the CEL rules."""
    if v is None:
        if rules is None and not s.get("nullable") and s.get("type"):
            out.append(_type_error(path, v, str(s["type"])))
        return
    if rules is None and not _check_type(v, s, path, out):
        return
    if rules is None:
        _check_enum_and_bounds(v, s, path, out)
    if isinstance(v, dict):
        _validate_object(v, s, path, out, rules, old)
    elif isinstance(v, list):
        _validate_array(v, s, path, out, rules, old)
    if rules is not None:
        if s.get("x-kubernetes-validations"):
            out.extend(rules(path, s, v, old))
        return
    for key in ("allOf", "anyOf", "oneOf"):
        subs = s.get(key)
        if isinstance(subs, list) and subs:
            results = [validate(v, sub, path) for sub in subs if isinstance(sub, dict)]
            ok = sum(1 for r in results if not r)
            if key == "allOf" and ok < len(results):
                out.extend(e for r in results for e in r)
            elif key == "anyOf" and ok == 0:
                out.append(errors.invalid(path, v, f"{path} in body must validate at least one schema (anyOf)"))
            elif key == "oneOf" and ok != 1:
                out.append(errors.invalid(path, v, f"{path} in body must validate one and only one schema (oneOf)"))
    if isinstance(s.get("not"), dict) and not validate(v, s["not"], path):
        out.append(errors.invalid(path, v, f"{path} in body should not be valid against the schema"))


def _check_type(v: Any, s: Schema, path: str, out: list[FieldError]) -> bool:
    if s.get("x-kubernetes-int-or-string") is True:
        if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
            return True
        actual = json_type(v)
        out.append(FieldError("FieldValueTypeInvalid", path,
                              f'{path} in body must be of type integer or string: "{actual}"', actual, True))
        return False
    typ = s.get("type")
    if typ and not _is_type(v, str(typ)):
        out.append(_type_error(path, v, str(typ)))
        return False
    return True


def _check_enum_and_bounds(v: Any, s: Schema, path: str, out: list[FieldError]) -> None:
    enum = s.get("enum")
    if isinstance(enum, list) and v not in enum:
        out.append(errors.not_supported(path, v, [str(e) for e in enum]))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        for key, excl, word in (("maximum", "exclusiveMaximum", "less than"),
                                ("minimum", "exclusiveMinimum", "greater than")):
            bound = s.get(key)
            if not isinstance(bound, (int, float)):
                continue
            exclusive = s.get(excl) is True
            bad = (v >= bound if exclusive else v > bound) if key == "maximum" else (
                v <= bound if exclusive else v < bound)
            if bad:
                rel = word if exclusive else f"{word} or equal to"
                out.append(errors.invalid(path, v, f"{path} in body should be {rel} {bound}"))
        mult = s.get("multipleOf")
        if isinstance(mult, (int, float)) and mult and (v / mult) != int(v / mult):
            out.append(errors.invalid(path, v, f"{path} in body should be a multiple of {mult}"))
    if isinstance(v, str):
        max_len, min_len = s.get("maxLength"), s.get("minLength")
        if isinstance(max_len, int) and len(v) > max_len:
            out.append(FieldError("FieldValueTooLong", path, f"may not be longer than {max_len}", v, True))
        if isinstance(min_len, int) and len(v) < min_len:
            out.append(errors.invalid(path, v, f"{path} in body should be at least {min_len} chars long"))
        pat = s.get("pattern")
        if isinstance(pat, str) and (rx := _pattern(pat)) is not None and not rx.search(v):
            out.append(errors.invalid(path, v, f"{path} in body should match '{pat}'"))
        fmt = s.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS and not _FORMATS[fmt](v):
            out.append(errors.invalid(path, v, f"{path} in body must be of type {fmt}: \"{v}\""))


def _validate_object(v: dict[str, Any], s: Schema, path: str, out: list[FieldError],
                     rules: RuleCheck | None, old: Any) -> None:
    props = _props(s)
    extra = _additional(s)
    old_map = old if isinstance(old, dict) else {}
    if rules is not None:
        for key, item in v.items():
            sub = props.get(key, extra)
            if sub is not None:
                _validate(item, sub, _child(path, key), out, rules, old_map.get(key))
        return
    for name in s.get("required") or []:
        if name not in v:
            out.append(errors.required(_child(path, str(name))))
    max_p, min_p = s.get("maxProperties"), s.get("minProperties")
    if isinstance(max_p, int) and len(v) > max_p:
        out.append(FieldError("FieldValueTooMany", path, f"must have at most {max_p} items", len(v), True))
    if isinstance(min_p, int) and len(v) < min_p:
        out.append(errors.invalid(path, len(v), f"{path} in body should have at least {min_p} properties"))
    if s.get("x-kubernetes-embedded-resource") is True:
        for key in ("apiVersion", "kind"):
            if not v.get(key):
                out.append(errors.required(_child(path, key), "must not be empty"))
    for key, item in v.items():
        sub = props.get(key, extra)
        if sub is not None:
            _validate(item, sub, _child(path, key), out, rules, old_map.get(key))


def _validate_array(v: list[Any], s: Schema, path: str, out: list[FieldError],
                    rules: RuleCheck | None, old: Any) -> None:
    items = _items(s)
    old_list = old if isinstance(old, list) else []
    if rules is None:
        _check_list(v, s, path, out)
    if items is not None:
        for i, item in enumerate(v):
            _validate(item, items, f"{path}[{i}]", out, rules, old_list[i] if i < len(old_list) else None)


def _check_list(v: list[Any], s: Schema, path: str, out: list[FieldError]) -> None:
    max_i, min_i = s.get("maxItems"), s.get("minItems")
    if isinstance(max_i, int) and len(v) > max_i:
        out.append(FieldError("FieldValueTooMany", path, f"must have at most {max_i} items", len(v), True))
    if isinstance(min_i, int) and len(v) < min_i:
        out.append(errors.invalid(path, len(v), f"{path} in body should have at least {min_i} items"))
    list_type = s.get("x-kubernetes-list-type")
    if s.get("uniqueItems") is True or list_type == "set":
        seen: set[str] = set()
        for i, item in enumerate(v):
            k = _dup_key(item)
            if k in seen:
                out.append(errors.duplicate(f"{path}[{i}]", item))
            seen.add(k)
    elif list_type == "map":
        keys = [str(k) for k in s.get("x-kubernetes-list-map-keys") or []]
        seen_keys: set[str] = set()
        for i, item in enumerate(v):
            if not isinstance(item, dict):
                continue
            k = _dup_key({key: item.get(key) for key in keys})
            if k in seen_keys:
                out.append(errors.duplicate(f"{path}[{i}]", {key: item.get(key) for key in keys if key in item}))
            seen_keys.add(k)
