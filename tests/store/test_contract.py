"""The store contract (bosun.store.base) checked against every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bosun.store.base import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    NotFoundError,
    Store,
    WatchEvent,
)

PODS = "/registry/pods/"
StoreFactory = Callable[..., Awaitable[Store]]  # the open_store fixture (tests/store/conftest.py)


async def take(it: AsyncIterator[WatchEvent], n: int, within: float = 5.0) -> list[WatchEvent]:
    """The next ``n`` events of a watch (fails the test if they do not come in time)."""

    async def collect() -> list[WatchEvent]:
        return [await anext(it) for _ in range(n)]

    return await asyncio.wait_for(collect(), within)


async def nothing_more(it: AsyncIterator[WatchEvent], wait: float = 0.3) -> None:
    """Assert the watch delivers no further event within ``wait`` seconds."""
    with pytest.raises(TimeoutError):
        ev = await asyncio.wait_for(anext(it), wait)
        pytest.fail(f"unexpected event {ev}")


async def test_create_then_get(store: Store) -> None:
    rev = await store.create(PODS + "default/a", b'{"a":1}')
    kv = await store.get(PODS + "default/a")
    assert kv is not None
    assert (kv.key, kv.value) == (PODS + "default/a", b'{"a":1}')
    assert (kv.mod_revision, kv.create_revision) == (rev, rev)
    assert await store.get(PODS + "default/missing") is None


async def test_create_existing_key_fails_and_keeps_value(store: Store) -> None:
    rev = await store.create(PODS + "default/a", b"one")
    with pytest.raises(KeyExistsError):
        await store.create(PODS + "default/a", b"two")
    kv = await store.get(PODS + "default/a")
    assert kv is not None and kv.value == b"one" and kv.mod_revision == rev


async def test_update_is_compare_and_swap(store: Store) -> None:
    key = PODS + "default/a"
    r1 = await store.create(key, b"v1")
    r2 = await store.update(key, b"v2", r1)
    assert r2 > r1
    with pytest.raises(ConflictError) as info:
        await store.update(key, b"stale", r1)
    assert (info.value.expected, info.value.actual) == (r1, r2)
    r3 = await store.update(key, b"v3", 0)  # unconditional
    kv = await store.get(key)
    assert kv is not None
    assert (kv.value, kv.mod_revision, kv.create_revision) == (b"v3", r3, r1)


async def test_update_or_delete_missing_key_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.update(PODS + "default/none", b"x", 0)
    with pytest.raises(NotFoundError):
        await store.update(PODS + "default/none", b"x", 5)
    with pytest.raises(NotFoundError):
        await store.delete(PODS + "default/none")


async def test_delete_is_compare_and_swap(store: Store) -> None:
    key = PODS + "default/a"
    r1 = await store.create(key, b"v1")
    r2 = await store.update(key, b"v2", r1)
    with pytest.raises(ConflictError):
        await store.delete(key, r1)
    assert await store.get(key) is not None
    deleted = await store.delete(key, r2)
    assert deleted.key == key and deleted.value == b"v2"
    assert deleted.mod_revision == r2 + 1 and deleted.create_revision == r1
    assert await store.get(key) is None
    assert await store.current_revision() == r2 + 1


async def test_list_by_prefix_start_key_and_limit(store: Store) -> None:
    for ns, name in [("b", "2"), ("a", "1"), ("b", "1"), ("a", "2")]:
        await store.create(f"{PODS}{ns}/{name}", ns.encode() + name.encode())
    await store.create("/registry/podsx/a/1", b"other resource")
    await store.create("/registry/services/a/1", b"svc")

    items, rev = await store.list(PODS)
    assert [kv.key for kv in items] == [PODS + "a/1", PODS + "a/2", PODS + "b/1", PODS + "b/2"]
    assert [kv.value for kv in items] == [b"a1", b"a2", b"b1", b"b2"]
    assert rev == await store.current_revision()

    items, _ = await store.list(PODS + "b/")
    assert [kv.key for kv in items] == [PODS + "b/1", PODS + "b/2"]

    items, _ = await store.list(PODS, limit=3)
    assert [kv.key for kv in items] == [PODS + "a/1", PODS + "a/2", PODS + "b/1"]
    items, _ = await store.list(PODS, start_key=PODS + "a/2", limit=2)  # next page, inclusive
    assert [kv.key for kv in items] == [PODS + "a/2", PODS + "b/1"]
    items, _ = await store.list(PODS, start_key=PODS + "b/1\x00")
    assert [kv.key for kv in items] == [PODS + "b/2"]

    assert await store.count(PODS) == 4
    assert await store.count("/registry/") == 6
    assert await store.count("/registry/nothing/") == 0


async def test_revision_grows_by_one_per_write_across_keys(store: Store) -> None:
    r0 = await store.current_revision()
    r1 = await store.create("/registry/pods/ns/a", b"a")
    r2 = await store.create("/registry/services/ns/b", b"b")
    with pytest.raises(KeyExistsError):
        await store.create("/registry/pods/ns/a", b"again")  # a failed write takes no revision
    r3 = await store.update("/registry/pods/ns/a", b"a2", r1)
    r4 = (await store.delete("/registry/services/ns/b")).mod_revision
    assert [r1, r2, r3, r4] == [r0 + 1, r0 + 2, r0 + 3, r0 + 4]
    assert await store.current_revision() == r4
    _, list_rev = await store.list("/registry/")
    assert list_rev == r4


async def test_watch_from_revision_delivers_later_events_in_order(store: Store) -> None:
    start = await store.create(PODS + "ns/before", b"old")
    r1 = await store.create(PODS + "ns/a", b"a1")
    await store.create("/registry/services/ns/s", b"not a pod")
    r2 = await store.update(PODS + "ns/a", b"a2", r1)
    watch = store.watch(PODS, start)
    try:
        r3 = (await store.delete(PODS + "ns/a")).mod_revision
        events = await take(watch, 3)
        assert [(e.type, e.key, e.value, e.revision, e.prev_value) for e in events] == [
            ("ADDED", PODS + "ns/a", b"a1", r1, None),
            ("MODIFIED", PODS + "ns/a", b"a2", r2, b"a1"),
            ("DELETED", PODS + "ns/a", b"a2", r3, b"a2"),
        ]
        r4 = await store.create(PODS + "ns/live", b"live")
        (live,) = await take(watch, 1)
        assert (live.type, live.key, live.revision) == ("ADDED", PODS + "ns/live", r4)
        await nothing_more(watch)
    finally:
        await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_resumes_without_loss_or_duplicates(store: Store) -> None:
    start = await store.current_revision()
    for i in range(10):
        await store.create(f"{PODS}ns/p{i}", str(i).encode())
    watch = store.watch(PODS, start)
    first = await take(watch, 4)
    await watch.aclose()  # type: ignore[attr-defined]
    for i in range(10, 15):  # written while nobody watches
        await store.create(f"{PODS}ns/p{i}", str(i).encode())

    resumed = store.watch(PODS, first[-1].revision)
    try:
        rest = await take(resumed, 11)
        await nothing_more(resumed)
    finally:
        await resumed.aclose()  # type: ignore[attr-defined]
    seen = [e.value for e in first + rest]
    assert seen == [str(i).encode() for i in range(15)]
    revisions = [e.revision for e in first + rest]
    assert revisions == sorted(set(revisions))


async def test_watch_from_compacted_revision_fails(store: Store) -> None:
    revs = [await store.create(f"{PODS}ns/p{i}", b"x") for i in range(5)]
    await store.compact(revs[2])
    assert await store.compacted_revision() == revs[2]
    with pytest.raises(CompactedError):
        await anext(store.watch(PODS, revs[0]))
    # From the compacted revision itself nothing is missing.
    watch = store.watch(PODS, revs[2])
    try:
        events = await take(watch, 2)
    finally:
        await watch.aclose()  # type: ignore[attr-defined]
    assert [e.revision for e in events] == revs[3:]
    assert (await store.get(f"{PODS}ns/p0")) is not None  # compaction keeps current values


async def test_concurrent_cas_increments_lose_no_update(store: Store) -> None:
    key = "/registry/counters/c"
    await store.create(key, b"0")

    async def worker() -> None:
        done = 0
        while done < 25:
            kv = await store.get(key)
            assert kv is not None
            try:
                await store.update(key, str(int(kv.value) + 1).encode(), kv.mod_revision)
            except ConflictError:
                continue
            done += 1

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(20))), 25)
    kv = await store.get(key)
    assert kv is not None and kv.value == b"500"


async def test_many_watchers_each_get_every_event(store: Store) -> None:
    start = await store.current_revision()
    watches = [store.watch(PODS, start) for _ in range(100)]
    try:
        writes = [store.create(f"{PODS}ns/p{i}", b"v") for i in range(50)]
        readers = [take(w, 50, within=15) for w in watches]
        _, *results = await asyncio.gather(asyncio.gather(*writes), *readers)
        expected = [f"{PODS}ns/p{i}" for i in range(50)]
        for events in results:
            assert sorted(e.key for e in events) == sorted(expected)
            assert [e.revision for e in events] == sorted(e.revision for e in events)
    finally:
        for w in watches:
            await w.aclose()  # type: ignore[attr-defined]


async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def test_history_is_compacted_automatically(open_store: StoreFactory) -> None:
    if open_store.backend == "sqlite":  # type: ignore[attr-defined]
        store = await open_store(history_seconds=0.2, min_history=0, compact_interval=0.05)
    else:
        store = await open_store(history_seconds=0.2, compact_interval=0.05)
    first = await store.create(PODS + "ns/a", b"1")
    rev = first
    for _ in range(5):
        rev = await store.update(PODS + "ns/a", b"x", rev)
    deadline = asyncio.get_running_loop().time() + 5
    while await store.compacted_revision() < first:
        assert asyncio.get_running_loop().time() < deadline, "history was never compacted"
        await asyncio.sleep(0.05)
    with pytest.raises(CompactedError):
        await anext(store.watch(PODS, first - 1))
    kv = await store.get(PODS + "ns/a")
    assert kv is not None and kv.mod_revision == rev


async def test_another_client_sees_the_compaction(open_store: StoreFactory) -> None:
    writer = await open_store()
    revs = [await writer.create(f"{PODS}ns/p{i}", b"x") for i in range(3)]
    await writer.compact(revs[1])
    await writer.close()  # a SQLite file has one owner at a time; etcd does not care
    reader = await open_store()  # a restarted or second API server
    assert await reader.compacted_revision() >= revs[1]
    with pytest.raises(CompactedError):
        await anext(reader.watch(PODS, revs[0]))


async def test_large_list_is_complete_and_one_snapshot(store: Store) -> None:
    keys = [f"{PODS}big/p{i:05d}" for i in range(2500)]
    for chunk in range(0, len(keys), 250):
        await asyncio.gather(*(store.create(k, b"x" * 100) for k in keys[chunk : chunk + 250]))
    items, rev = await store.list(PODS + "big/")
    assert [kv.key for kv in items] == keys
    assert rev == await store.current_revision()
    items, _ = await store.list(PODS + "big/", start_key=keys[100], limit=1500)
    assert [kv.key for kv in items] == keys[100:1600]


async def test_close_ends_open_watches(open_store: StoreFactory) -> None:
    store = await open_store()
    watch = store.watch(PODS, await store.current_revision())
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0.1)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 5)
