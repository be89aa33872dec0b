"""SQLite-only behaviour: the file is the state, so it must survive a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bosun.aio import cancel_and_wait
from bosun.store import open_store
from bosun.store.base import CompactedError, UnavailableError
from bosun.store.sqlite import SQLiteStore


async def test_data_and_revisions_survive_reopen(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    try:
        r1 = await store.create("/registry/pods/ns/a", b"a")
        r2 = await store.update("/registry/pods/ns/a", b"a2", r1)
        await store.compact(r1)
    finally:
        await store.close()

    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    try:
        assert await store.current_revision() == r2
        assert await store.compacted_revision() == r1
        kv = await store.get("/registry/pods/ns/a")
        assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision) == (b"a2", r2, r1)
        assert await store.create("/registry/pods/ns/b", b"b") == r2 + 1
        watch = store.watch("/registry/pods/", r1)  # history from before the restart
        events = [await anext(watch), await anext(watch)]
        await watch.aclose()
        assert [(e.type, e.revision, e.prev_value) for e in events] == [
            ("MODIFIED", r2, b"a"),
            ("ADDED", r2 + 1, None),
        ]
        with pytest.raises(CompactedError):
            await anext(store.watch("/registry/pods/", r1 - 1))
    finally:
        await store.close()


async def test_open_store_urls(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    await store.close()
    assert (tmp_path / "state.db").exists()
    store = await open_store(f"sqlite://{tmp_path}/other.db", tmp_path)
    await store.close()
    assert (tmp_path / "other.db").exists()
    for bad in ["mysql://x", "sqlite://relative.db", "etcd://", "etcd://host", "etcd://h:99999"]:
        with pytest.raises(ValueError):
            await open_store(bad, tmp_path)


async def test_second_open_of_the_same_file_is_refused(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    try:
        with pytest.raises(UnavailableError):
            await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
        await store.create("/registry/x", b"still works")
    finally:
        await store.close()
    again = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    await again.close()



async def test_point_reads_agree_with_the_file_whether_answered_from_memory_or_not(tmp_path: Path) -> None:
    """Reads of keys the writer holds in memory, of keys whose values it let go (more than
    its value cache holds), of missing and deleted keys, after a reopen, and while writes
    land: each read answers what the file holds."""
    path = tmp_path / "state.db"
    store = await SQLiteStore.open(path, compact_interval=0)
    big = b"x" * (1 << 20)
    try:
        created = {f"/k/{i:02d}": await store.create(f"/k/{i:02d}", big + bytes([i])) for i in range(40)}
        await store.delete("/k/39")
        assert await store.get("/k/39") is None and await store.get("/nothing") is None
        modified = dict(created, **{"/k/38": await store.update("/k/38", b"small", created["/k/38"])})
        for i in range(39):  # the first ones no longer fit in the 32 MB value cache: read from the file
            key = f"/k/{i:02d}"
            kv = await store.get(key)
            value = b"small" if i == 38 else big + bytes([i])
            assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision) == (
                value, modified[key], created[key])

        seen: list[tuple[int, bytes]] = []

        async def reader() -> None:
            for _ in range(300):
                kv = await store.get("/k/01")
                assert kv is not None and kv.create_revision == created["/k/01"]
                seen.append((kv.mod_revision, kv.value))
                await asyncio.sleep(0)

        task = asyncio.create_task(reader())
        rev = modified["/k/01"]
        written = {rev: big + bytes([1])}
        for n in range(100):
            rev = await store.update("/k/01", b"v%d" % n, rev)
            written[rev] = b"v%d" % n
        await task
        assert all(written[r] == v for r, v in seen)  # each value with its own revision
        assert [r for r, _ in seen] == sorted(r for r, _ in seen)  # never back in time
    finally:
        await store.close()
    store = await SQLiteStore.open(path, compact_interval=0)  # nothing in memory: all from the file
    try:
        kv = await store.get("/k/01")
        assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision) == (b"v99", rev, created["/k/01"])
        assert await store.get("/k/39") is None
    finally:
        await store.close()


async def test_a_write_reaches_the_watchers_before_its_writer_resumes(tmp_path: Path) -> None:
    """A committed batch wakes the store's watchers first: the API server's watch cache then
    sends an event to its watchers before the writers of that batch build their responses,
    so watch delivery is not behind them (issue 12's watch latency)."""
    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    seen: list[int] = []

    async def follow() -> None:
        async for ev in store.watch("/registry/", 0):
            seen.append(ev.revision)

    task = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0.1)  # the watch is waiting for writes
        for i in range(3):
            rev = await store.create(f"/registry/pods/ns/p{i}", b"x")
            assert seen[-1:] == [rev]
        batch = await asyncio.gather(*(store.create(f"/registry/pods/ns/q{i}", b"y") for i in range(5)))
        assert seen[-5:] == sorted(batch)
        updated = await store.update("/registry/pods/ns/p0", b"x2", seen[0])
        assert seen[-1] == updated
    finally:
        await cancel_and_wait(task)
        await store.close()
