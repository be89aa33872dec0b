"""The watch cache's copy of every object, indexed: what a list reads instead of the store.

Each resource keeps its current objects by key, by namespace and, for the fields agents and
controllers select on all the time, by field value (a node's agent lists its pods with
``spec.nodeName=<node>``): a list picks the smallest of these sets and never walks every
object when it need not, as kube-apiserver's watch cache indexers do. An entry is the last
event of its key (:class:`bosun.api.watchcache.CachedEvent`), so the object a watcher decoded
and the JSON it was sent as serve every later list too, once per revision.

A list may also be read as the resource was at an earlier revision still in the event ring
(``resourceVersionMatch=Exact``, the later pages of a paged list): the keys changed since
then are put back as they were before their first later change.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from bosun.api.selectors import FieldSelector, path_getter

# group_plural -> fields indexed by value (selected on by every node agent or controller).
INDEXED_FIELDS: dict[str, tuple[str, ...]] = {"pods": ("spec.nodeName",)}


class Item(Protocol):
    """One object of a list: its key, the object (read-only, shared) and its JSON."""

    @property
    def key(self) -> str: ...

    @property
    def obj(self) -> dict[str, Any]: ...

    def json(self) -> bytes: ...


class Entry(Protocol):
    """What the cache keeps per key: an :class:`Item` that also knows its revision and, for
    a change, the object before it and that object's revision."""

    @property
    def key(self) -> str: ...

    @property
    def obj(self) -> dict[str, Any]: ...

    def json(self) -> bytes: ...

    @property
    def revision(self) -> int: ...

    @property
    def type(self) -> str: ...

    @property
    def prev(self) -> dict[str, Any] | None: ...

    @property
    def prev_revision(self) -> int: ...

    def lacks(self, token: bytes) -> bool:
        """True when the object's JSON surely does not hold ``token``, known without decoding
        it (False whenever that would take a decode)."""
        ...


class Past:
    """An object as it was before a later change (a snapshot read)."""

    __slots__ = ("_json", "key", "obj")

    def __init__(self, key: str, obj: dict[str, Any]) -> None:
        self.key = key
        self.obj = obj
        self._json: bytes | None = None

    def json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.obj)
        return self._json


class SnapshotGone(Exception):
    """The revision asked for can no longer be rebuilt from the ring."""


class Bucket:
    """Entries by key, with the sorted key order kept until a key comes or goes."""

    __slots__ = ("_sorted", "items")

    def __init__(self) -> None:
        self.items: dict[str, Entry] = {}
        self._sorted: list[str] | None = None

    def put(self, entry: Entry) -> None:
        if entry.key not in self.items:
            self._sorted = None
        self.items[entry.key] = entry

    def remove(self, key: str) -> None:
        if self.items.pop(key, None) is not None:
            self._sorted = None

    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.items)
        return self._sorted


class FieldIndex:
    """Entries by the value of one field. An object without the field's name anywhere in its
    stored JSON is indexed under "" without being decoded: most pods events a process did not
    write itself (another API worker's creates, an agent's status writes) are then never
    decoded unless a list or watch reads them. Each key's value is kept, so that moving or
    removing an entry needs no decode of the one it replaces."""

    __slots__ = ("by_value", "get", "probe", "values")

    def __init__(self, path: str) -> None:
        self.get = path_getter(path)  # the value a field selector compares
        # The field's own name as a JSON key: absent from the bytes, absent from the object.
        self.probe = ('"' + path.rsplit(".", 1)[-1] + '"').encode()
        self.by_value: dict[str, Bucket] = {}
        self.values: dict[str, str] = {}

    def put(self, old: Entry | None, new: Entry) -> None:
        value = "" if new.lacks(self.probe) else self.get(new.obj)
        if old is not None:
            before = self.values.get(old.key)
            if before is not None and before != value:
                self.remove(old)
        self.values[new.key] = value
        self.by_value.setdefault(value, Bucket()).put(new)

    def remove(self, old: Entry) -> None:
        value = self.values.pop(old.key, None)
        if value is None:
            return
        b = self.by_value.get(value)
        if b is not None:
            b.remove(old.key)
            if not b.items:
                del self.by_value[value]


class ResourceState:
    """The current objects of one resource (one group_plural)."""

    def __init__(self, group_plural: str) -> None:
        self.all = Bucket()
        self.namespaces: dict[str, Bucket] = {}
        self.fields = {f: FieldIndex(f) for f in INDEXED_FIELDS.get(group_plural, ())}

    def get(self, key: str) -> Entry | None:
        return self.all.items.get(key)

    def put(self, entry: Entry, namespace: str) -> None:
        old = self.all.items.get(entry.key)
        self.all.put(entry)
        if namespace:
            self.namespaces.setdefault(namespace, Bucket()).put(entry)
        for index in self.fields.values():
            index.put(old, entry)

    def remove(self, key: str, namespace: str) -> None:
        old = self.all.items.get(key)
        if old is None:
            return
        self.all.remove(key)
        b = self.namespaces.get(namespace)
        if b is not None:
            b.remove(key)
            if not b.items:
                del self.namespaces[namespace]
        for index in self.fields.values():
            index.remove(old)

    def candidates(self, namespace: str | None, fields: FieldSelector | None) -> Bucket:
        """The smallest indexed set holding every object the list may return."""
        best = self.all if not namespace else self.namespaces.get(namespace, _EMPTY)
        if fields is not None:
            for r in fields.requirements:
                if r.op not in ("=", "=="):
                    continue
                if r.field == "metadata.namespace":
                    b = self.namespaces.get(r.value, _EMPTY)
                else:
                    index = self.fields.get(r.field)
                    if index is None:
                        continue
                    b = index.by_value.get(r.value, _EMPTY)
                if len(b.items) < len(best.items):
                    best = b
        return best


_EMPTY = Bucket()


def snapshot(bucket: Bucket, changed: Iterable[Entry], prefix: str, start: str) -> list[Item]:
    """``bucket``'s objects under ``prefix`` from key ``start`` on, sorted by key, as they were
    before ``changed`` (for each key changed since the revision read, its first later event).
    An unchanged key is read from the current state (index-narrowed); a changed key from its
    event's previous object, whatever set it belongs to now (it may have moved)."""
    earlier: dict[str, Item | None] = {}
    for ev in changed:
        if ev.key in earlier or not ev.key.startswith(prefix) or ev.key < start:
            continue
        if ev.type == "ADDED":
            earlier[ev.key] = None
            continue
        prev = ev.prev
        if prev is None or not ev.prev_revision:
            raise SnapshotGone(ev.key)
        if prev.get("metadata", {}).get("resourceVersion") != str(ev.prev_revision):
            prev = dict(prev, metadata=dict(prev.get("metadata") or {}, resourceVersion=str(ev.prev_revision)))
        earlier[ev.key] = Past(ev.key, prev)
    items = bucket.items
    keys = [k for k in range_from(bucket.sorted_keys(), prefix, start) if k not in earlier]
    keys.extend(k for k, v in earlier.items() if v is not None)
    keys.sort()
    return [earlier.get(k) or items[k] for k in keys]  # type: ignore[misc]


def range_from(keys: list[str], prefix: str, start: str) -> list[str]:
    """The sorted keys under ``prefix`` from ``start`` (inclusive) on."""
    lo = bisect.bisect_left(keys, max(prefix, start))
    hi = bisect.bisect_left(keys, prefix + "\U0010ffff")
    return keys[lo:hi]
