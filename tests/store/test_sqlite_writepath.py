"""SQLite's write path keeps key revisions in memory and each value once in the log: what a
client sees must not change (same-batch writes, history read back from the file after
compaction, files written by earlier versions)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bosun.store.base import ConflictError, KeyExistsError, NotFoundError, WatchEvent
from bosun.store.sqlite import SQLiteStore

PODS = "/registry/pods/ns/"


async def _events(store: SQLiteStore, prefix: str, after: int, n: int) -> list[WatchEvent]:
    watch = store.watch(prefix, after)
    try:
        async with asyncio.timeout(5):
            return [await anext(watch) for _ in range(n)]
    finally:
        await watch.aclose()  # type: ignore[attr-defined]


async def test_writes_of_one_batch_see_each_other_in_order(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    try:
        start = await store.current_revision()
        # Submitted together, so the writer applies them in one batch.
        results = await asyncio.gather(
            store.create(PODS + "a", b"1"),
            store.create(PODS + "a", b"dup"),
            store.update(PODS + "a", b"2", 0),
            store.delete(PODS + "a"),
            store.update(PODS + "a", b"gone", 0),
            store.create(PODS + "a", b"3"),
            return_exceptions=True,
        )
        assert results[0] == start + 1
        assert isinstance(results[1], KeyExistsError)
        assert results[2] == start + 2
        deleted = results[3]
        assert not isinstance(deleted, BaseException)
        assert (deleted.value, deleted.mod_revision, deleted.create_revision) == (b"2", start + 3, start + 1)
        assert isinstance(results[4], NotFoundError)
        assert results[5] == start + 4
        kv = await store.get(PODS + "a")
        assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision) == (b"3", start + 4, start + 4)
        events = await _events(store, PODS, start, 4)
        assert [(e.type, e.value, e.prev_value) for e in events] == [
            ("ADDED", b"1", None), ("MODIFIED", b"2", b"1"), ("DELETED", b"2", b"2"), ("ADDED", b"3", None),
        ]
    finally:
        await store.close()


async def test_revisions_survive_reopen_without_reading_values(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    try:
        r1 = await store.create(PODS + "a", b"1")
        await store.create(PODS + "b", b"1")
        await store.delete(PODS + "b")
    finally:
        await store.close()
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    try:
        with pytest.raises(KeyExistsError):
            await store.create(PODS + "a", b"again")
        with pytest.raises(ConflictError):
            await store.update(PODS + "a", b"2", r1 + 1)
        with pytest.raises(NotFoundError):
            await store.update(PODS + "b", b"2", 0)
        r = await store.update(PODS + "a", b"2", r1)  # previous value read from the file
        (ev,) = await _events(store, PODS, r - 1, 1)
        assert (ev.type, ev.value, ev.prev_value) == ("MODIFIED", b"2", b"1")
        assert await store.create(PODS + "b", b"new") == r + 1
    finally:
        await store.close()


async def test_history_from_the_file_keeps_previous_values_across_compaction(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0, ring_size=16)
    try:
        a1 = await store.create(PODS + "a", b"a1")
        b1 = await store.create(PODS + "b", b"b1")
        await store.compact(b1)  # a1 and b1 leave the log
        a2 = await store.update(PODS + "a", b"a2", a1)
        a3 = await store.update(PODS + "a", b"a3", a2)
        b2 = await store.update(PODS + "b", b"b2", b1)
        for i in range(40):  # push everything above out of the in-memory ring
            await store.create(f"/registry/other/ns/x{i}", b"x")
        events = await _events(store, PODS, b1, 3)
        assert [(e.revision, e.value, e.prev_value) for e in events] == [
            (a2, b"a2", b"a1"), (a3, b"a3", b"a2"), (b2, b"b2", b"b1"),
        ]
        await store.compact(a2)  # a3 still needs a2's value as its previous one
        d = (await store.delete(PODS + "a")).mod_revision
        for i in range(40, 80):
            await store.create(f"/registry/other/ns/x{i}", b"x")
        events = await _events(store, PODS, a2, 3)
        assert [(e.type, e.revision, e.value, e.prev_value) for e in events] == [
            ("MODIFIED", a3, b"a3", b"a2"), ("MODIFIED", b2, b"b2", b"b1"), ("DELETED", d, b"a3", b"a3"),
        ]
    finally:
        await store.close()


async def test_a_file_from_before_prev_revision_opens_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, mod_revision INTEGER NOT NULL,
            create_revision INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE log (revision INTEGER PRIMARY KEY, key TEXT NOT NULL, type INTEGER NOT NULL,
            value BLOB NOT NULL, prev_value BLOB);
        CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta VALUES ('revision', 2), ('compacted', 0);
        INSERT INTO kv VALUES ('/registry/pods/ns/a', CAST('v2' AS BLOB), 2, 1);
        INSERT INTO log VALUES (1, '/registry/pods/ns/a', 0, CAST('v1' AS BLOB), NULL),
            (2, '/registry/pods/ns/a', 1, CAST('v2' AS BLOB), CAST('v1' AS BLOB));
    """)
    conn.commit()
    conn.close()
    store = await SQLiteStore.open(path, compact_interval=0)
    try:
        r3 = await store.update(PODS + "a", b"v3", 2)
        events = await _events(store, PODS, 0, 3)
        assert [(e.revision, e.value, e.prev_value) for e in events] == [
            (1, b"v1", None), (2, b"v2", b"v1"), (r3, b"v3", b"v2"),
        ]
    finally:
        await store.close()


async def test_writes_submitted_as_the_store_closes_are_written(tmp_path: Path) -> None:
    """Writes reach the writer a loop turn at a time: those still waiting for their turn when
    close() starts are handed over before the writer stops, never left unanswered."""
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    writes = [asyncio.ensure_future(store.create(PODS + f"p{i}", b"v%d" % i)) for i in range(20)]
    await asyncio.sleep(0)  # each has submitted; the hand-over to the writer is still to come
    async with asyncio.timeout(10):
        await store.close()
        revs = await asyncio.gather(*writes)
    assert sorted(revs) == list(range(revs[0], revs[0] + 20))
    again = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    try:
        kvs, _ = await again.list(PODS)
        assert sorted(kv.value for kv in kvs) == sorted(b"v%d" % i for i in range(20))
    finally:
        await again.close()
