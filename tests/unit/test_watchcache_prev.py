"""Selector watches tell ADDED/MODIFIED/DELETED apart by the object before each change; the
cache takes that from its previous event for the key instead of decoding it again, and must
give the same answers as the store's own previous value in every case."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bosun.api.nstracker import NamespaceTracker
from bosun.api.registry import must_by_plural
from bosun.api.selectors import parse_field_selector
from bosun.api.storage import Storage
from bosun.api.watch import make_filter
from bosun.api.watchcache import CachedEvent, WatchCache
from bosun.store.base import WatchEvent
from bosun.store.sqlite import SQLiteStore

KEY = "/registry/pods/ns/p"


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[WatchCache]:
    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    wc = WatchCache(store)
    await wc.start()
    try:
        yield wc
    finally:
        await wc.stop()
        await store.close()


def pod(node: str) -> bytes:
    return orjson.dumps({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": node}})


async def settle(wc: WatchCache, revision: int) -> None:
    """Until the cache has seen ``revision``."""
    reached = asyncio.Event()

    def listener(ev: CachedEvent) -> None:
        if ev.revision >= revision:
            reached.set()

    wc.listeners.append(listener)
    try:
        if wc.revision < revision:
            async with asyncio.timeout(5):
                await reached.wait()
    finally:
        wc.listeners.remove(listener)


async def test_node_watch_sees_pods_arrive_change_and_leave(cache: WatchCache) -> None:
    store = cache.store
    w = cache.subscribe("pods", cache.revision, make_filter(None, None, parse_field_selector("spec.nodeName=n1")))
    rev = await store.create(KEY, pod(""))
    rev = await store.update(KEY, pod("n1"), rev)  # bound here: ADDED for this node
    rev = await store.update(KEY, pod("n1"), rev)  # a status write: MODIFIED
    rev = await store.update(KEY, pod("n2"), rev)  # moved away: DELETED for this node
    rev = await store.update(KEY, pod("n3"), rev)  # elsewhere: nothing
    rev = await store.update(KEY, pod("n1"), rev)  # back: ADDED
    await store.delete(KEY)                         # gone: DELETED
    await settle(cache, rev + 1)
    seen: list[tuple[str, Any]] = []
    while not w.queue.empty():
        item = w.queue.get_nowait()
        assert item is not None
        seen.append((item[0], item[1].obj["spec"]["nodeName"]))
    assert seen == [("ADDED", "n1"), ("MODIFIED", "n1"), ("DELETED", "n2"), ("ADDED", "n1"), ("DELETED", "n1")]


async def test_prev_is_the_object_of_the_event_before(cache: WatchCache) -> None:
    store = cache.store
    rev1 = await store.create(KEY, pod("a"))
    rev2 = await store.update(KEY, pod("b"), rev1)
    await settle(cache, rev2)
    first, second = list(cache.buffer)[-2:]
    assert second.prev is first.obj
    assert second.prev is not None and second.prev["spec"]["nodeName"] == "a"
    # The first event's own prev: none (a create).
    assert first.prev is None


async def test_late_reader_of_an_older_event_decodes_its_prev(cache: WatchCache) -> None:
    store = cache.store
    rev = await store.create(KEY, pod("a"))
    rev = await store.update(KEY, pod("b"), rev)
    rev = await store.update(KEY, pod("c"), rev)
    await settle(cache, rev)
    _, middle, last = list(cache.buffer)[-3:]
    # Nobody asked for the middle event's prev before the last one came: still right.
    assert middle.prev is not None and middle.prev["spec"]["nodeName"] == "a"
    assert last.prev is not None and last.prev["spec"]["nodeName"] == "b"



def _new_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _relabelled(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj, metadata=dict(obj["metadata"], labels={"round": "2"}))


async def test_writes_hand_their_objects_to_their_events_even_when_the_event_comes_first(tmp_path: Path) -> None:
    """50 concurrent creates, then 50 updates: the store reports them in batches, and the
    cache often runs before the writers of a batch do. Every event still gets the object its
    write stored (nothing decoded again), with the revision the write answered."""
    pods = must_by_plural("", "v1", "pods")
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    wc = WatchCache(store)
    await wc.start()
    namespaces = NamespaceTracker()
    namespaces.phase["ns"] = "Active"
    storage = Storage(store, namespaces)
    # Pods are admitted only with their ServiceAccount (made before the cache hears of writes).
    await storage.create(must_by_plural("", "v1", "serviceaccounts"), "ns",
                         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    storage.on_write, storage.on_writing = wc.remember, wc.writing
    try:
        created = await asyncio.gather(*(storage.create(pods, "ns", _new_pod(f"p{i}")) for i in range(50)))
        updated = await asyncio.gather(*(storage.update(pods, "ns", o["metadata"]["name"], _relabelled(o))
                                         for o in created))
        for outs in (created, updated):
            await settle(wc, max(int(o["metadata"]["resourceVersion"]) for o in outs))
        st = wc.resource("pods")
        for o in updated:
            entry = st.get(f"/registry/pods/ns/{o['metadata']['name']}")
            assert isinstance(entry, CachedEvent)
            assert entry.obj is o and o["metadata"]["labels"] == {"round": "2"}
            assert o["metadata"]["resourceVersion"] == str(entry.revision)
        # the creates' events too, in the ring
        by_key = {ev.key: ev for ev in wc.changed_since("pods", 0) if ev.type == "ADDED"}
        for o in created:
            ev = by_key[f"/registry/pods/ns/{o['metadata']['name']}"]
            assert ev.obj is o and o["metadata"]["resourceVersion"] == str(ev.revision)
        assert not wc.written.in_flight and not wc.written.done
    finally:
        await wc.stop()
        await store.close()


def test_lacks_answers_from_the_bytes_and_decodes_nothing() -> None:
    """What the field index, the access control and the metrics collector ask of every pod
    event: a key absent from orjson's bytes is absent from the object; an escaped value
    (``\\u``) or a sealed one is never answered from the bytes. Each answer stands when
    asked again with another token in between (the answers are kept per event)."""
    ev = CachedEvent(WatchEvent("ADDED", KEY, pod(""), 5))
    assert ev.lacks(b'"containerStatuses"') and not ev.lacks(b'"nodeName"')
    assert ev.lacks(b'"containerStatuses"') and not ev.lacks(b'"nodeName"')
    assert ev._obj is None  # nothing was decoded to answer
    quoted = orjson.dumps({"metadata": {"annotations": {"a": 'say "hi"'}}})
    assert b"\\" in quoted
    ev = CachedEvent(WatchEvent("ADDED", KEY, quoted, 5))
    assert ev.lacks(b'"nodeName"') and not ev.lacks(b'"annotations"')
    escaped = b'{"metadata":{"name":"p"},"spec":{"\\u006eodeName":"n1"}}'
    ev = CachedEvent(WatchEvent("ADDED", KEY, escaped, 5))
    assert not ev.lacks(b'"nodeName"') and ev.obj["spec"]["nodeName"] == "n1"
    sealed = CachedEvent(WatchEvent("ADDED", KEY, b"k8s:enc:aescbc:v1:key1:...", 5))
    assert not sealed.lacks(b'"nodeName"')
    decoded = CachedEvent(WatchEvent("ADDED", KEY, pod(""), 5))
    assert decoded.obj["spec"]["nodeName"] == ""
    assert not decoded.lacks(b'"containerStatuses"')  # decoded: the object answers instead
