"""What the cost model knows of a value: a schema's bounds (:class:`Shape`, when a CRD is
written) or the value itself (:class:`Live`, at run time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_REQUEST_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Shape:
    """What is known of a value: its schema (static) or the value itself (run time)."""

    schema: Mapping[str, Any] | None = None
    value: Any = None
    live: bool = False  # ``value`` is the value
    size_hint: int | None = None  # a literal's, or a result's, size

    def size(self) -> int:
        if self.size_hint is not None:
            return self.size_hint
        if self.live:
            return len(self.value) if isinstance(self.value, str | list | dict | bytes) else 1
        return schema_size(self.schema) if self.schema is not None else 1

    def field(self, name: str) -> Value:
        if self.live:
            return Live(self.value.get(name) if isinstance(self.value, dict) else None)
        if self.schema is None:
            return UNKNOWN
        props = self.schema.get("properties")
        if isinstance(props, dict) and isinstance(props.get(name), dict):
            return Shape(props[name])
        extra = self.schema.get("additionalProperties")
        return Shape(extra) if isinstance(extra, dict) else Shape({"x-kubernetes-preserve-unknown-fields": True})

    def item(self) -> Value:
        if self.live:
            return Live(self.value).item()
        if self.schema is None:
            return UNKNOWN
        for key in ("items", "additionalProperties"):
            if isinstance(self.schema.get(key), dict):
                return Shape(self.schema[key])
        if self.schema.get("type") == "object":  # iterating an object's keys
            return Shape({"type": "string"})
        return UNKNOWN


UNKNOWN = Shape()


class Live:
    """A value at run time (lighter than a :class:`Shape`: made for every step of a walk)."""

    __slots__ = ("value",)
    live = True
    schema = None

    def __init__(self, value: Any) -> None:
        self.value = value

    def size(self) -> int:
        v = self.value
        return len(v) if isinstance(v, str | list | dict | bytes) else 1

    def field(self, name: str) -> Live:
        v = self.value
        return Live(v.get(name) if isinstance(v, dict) else None)

    def item(self) -> Live:
        v = self.value
        if isinstance(v, list | dict) and v:
            return Live(max(v, key=_live_size))
        return Live(None)


Value = Shape | Live


def _live_size(v: Any) -> int:
    return len(v) if isinstance(v, str | list | dict | bytes) else 1


def _min_size(schema: Mapping[str, Any]) -> int:
    """The fewest bytes a value of ``schema`` takes in JSON."""
    return {"string": 2, "boolean": 4, "object": 2, "array": 2}.get(str(schema.get("type")), 1)


def schema_size(schema: Mapping[str, Any]) -> int:
    typ = schema.get("type")
    if typ == "string":
        n = schema.get("maxLength")
        return n if isinstance(n, int) else MAX_REQUEST_BYTES - 2
    if typ == "array":
        n = schema.get("maxItems")
        items = schema.get("items")
        return n if isinstance(n, int) else (MAX_REQUEST_BYTES - 2) // (
            _min_size(items if isinstance(items, dict) else {}) + 1)
    if typ == "object" or schema.get("x-kubernetes-preserve-unknown-fields"):
        n = schema.get("maxProperties")
        if isinstance(n, int):
            return n
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
            return (MAX_REQUEST_BYTES - 2) // (_min_size(extra if isinstance(extra, dict) else {}) + 4)
        props = schema.get("properties")
        return len(props) if isinstance(props, dict) else 1
    return 1


