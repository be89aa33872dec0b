"""The watch cache's field index files each object under the value a field selector compares
(one reader for both), so a list served from the index finds what the selector matches:
strings as they are, booleans as Kubernetes prints them (``true``), absent fields as ""."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bosun.api.cachestate import FieldIndex
from bosun.api.selectors import parse_field_selector
from bosun.api.watchcache import CachedEvent
from bosun.store.base import WatchEvent


def event(name: str, spec: dict[str, Any]) -> CachedEvent:
    obj = {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}
    return CachedEvent(WatchEvent("ADDED", f"/registry/pods/ns/{name}", orjson.dumps(obj), 1))


@pytest.mark.parametrize(("field", "spec", "selected"), [
    ("spec.nodeName", {"nodeName": "n1"}, "n1"),
    ("spec.hostNetwork", {"hostNetwork": True}, "true"),
    ("spec.hostNetwork", {"hostNetwork": False}, "false"),
    ("spec.priority", {"priority": 7}, "7"),
    ("spec.nodeName", {}, ""),
])
def test_an_object_is_indexed_under_what_its_selector_compares(field: str, spec: dict[str, Any],
                                                               selected: str) -> None:
    index = FieldIndex(field)
    ev = event("p", spec)
    index.put(None, ev)
    selector = parse_field_selector(f"{field}={selected}")
    assert selector.matches(ev.obj)
    assert list(index.by_value) == [selected]
    assert set(index.by_value[selected].items) == {ev.key}
