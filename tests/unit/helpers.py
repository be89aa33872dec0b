"""Small lookups the unit tests share: a resource by an object's apiVersion and kind, and every
path into a JSON value (for tests that break or change an object at each place in turn)."""

from __future__ import annotations

from typing import Any

from bosun.api.registry import Resource, by_kind


def must_by_kind(api_version: str, kind: str) -> Resource:
    """by_kind() for a kind the test is written against: a misspelt kind fails where it is named."""
    r = by_kind(api_version, kind)
    assert r is not None, (api_version, kind)
    return r


def json_paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of ``obj`` itself (``prefix``, ``()`` at the top) and of every value inside it: dict
    keys and list indexes, parents before their children."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += json_paths(v, (*prefix, i))
    return out
