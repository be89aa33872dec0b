"""Kubernetes' CEL regex library: ``find`` and ``findAll`` (with an optional limit).

Patterns are Python's ``re``, not RE2: the syntax both share (classes, groups, anchors,
repetition) behaves the same; RE2-only or re-only constructs differ."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from bosun.api.cellib.typed import integer, string


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex: {pattern}: {exc}") from exc


def find(value: Any, pattern: Any) -> str:
    m = _compile(string(pattern)).search(string(value))
    return m.group(0) if m else ""


def find_all(value: Any, pattern: Any, limit: Any = -1) -> list[str]:
    n = integer(limit)
    if n == 0:
        return []
    found = [m.group(0) for m in _compile(string(pattern)).finditer(string(value))]
    return found if n < 0 else found[:n]


FUNCTIONS: dict[str, Callable[..., Any]] = {"find": find, "findAll": find_all}
