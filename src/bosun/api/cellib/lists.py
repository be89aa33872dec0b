"""Kubernetes' CEL list library: ``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``,
``lastIndexOf`` on lists of comparable elements (ints, doubles, strings, quantities...)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

from bosun.api.cellib.typed import NoOverload


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise NoOverload("no such overload: expected list")
    return value


def _comparable(items: list[Any]) -> list[Any]:
    kinds = {type(x) for x in items}
    if len(kinds) > 1 or kinds & {dict, list, type(None)}:
        raise TypeError("no such overload: list elements are not comparable")
    return items


def is_sorted(value: Any) -> bool:
    items = _comparable(_list(value))
    return all(a <= b for a, b in pairwise(items))


def sum_(value: Any) -> Any:
    items = _comparable(_list(value))
    if any(isinstance(x, str | bool) for x in items):
        raise TypeError("no such overload: sum of a list that is not of numbers")
    return sum(items) if items else 0


def min_(value: Any) -> Any:
    items = _comparable(_list(value))
    if not items:
        raise ValueError("min called on empty list")
    return min(items)


def max_(value: Any) -> Any:
    items = _comparable(_list(value))
    if not items:
        raise ValueError("max called on empty list")
    return max(items)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def index_of(value: Any, item: Any) -> int:
    return next((i for i, x in enumerate(_list(value)) if _same(x, item)), -1)


def last_index_of(value: Any, item: Any) -> int:
    items = _list(value)
    return next((i for i in range(len(items) - 1, -1, -1) if _same(items[i], item)), -1)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isSorted": is_sorted, "sum": sum_, "min": min_, "max": max_,
    "indexOf": index_of, "lastIndexOf": last_index_of,
}
