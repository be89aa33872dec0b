"""Constant churn on one object must not grow the SQLite file or slow down reads: automatic
compaction drops old history and gives the space back."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from bosun.store.sqlite import SQLiteStore

VALUE = b'{"kind":"Pod","status":"' + b"x" * 3000 + b'"}'


def disk_usage(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


async def list_latency(store: SQLiteStore) -> float:
    samples = []
    for _ in range(15):
        t = time.perf_counter()
        await store.list("/registry/pods/")
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


async def churn(store: SQLiteStore, key: str, rev: int, n: int) -> int:
    for i in range(n):
        rev = await store.update(key, VALUE, rev)
        if i % 200 == 0:
            await asyncio.sleep(0.01)  # let the compactor run as it would between requests
    await asyncio.sleep(0.3)  # one more compaction round settles the file
    return rev


async def test_file_size_and_list_latency_stay_flat_under_churn(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = await SQLiteStore.open(db, history_seconds=0.05, min_history=100, compact_interval=0.05)
    try:
        for i in range(200):
            await store.create(f"/registry/pods/ns/p{i}", VALUE)
        key = "/registry/pods/ns/busy"
        rev = await store.create(key, VALUE)

        rev = await churn(store, key, rev, 2000)
        size_2k, latency_2k = disk_usage(db), await list_latency(store)
        rev = await churn(store, key, rev, 4000)
        size_6k, latency_6k = disk_usage(db), await list_latency(store)

        # Without compaction the log alone would hold 6000 x 2 x 3 KB = 36 MB.
        assert size_6k < 1.5 * size_2k, (size_2k, size_6k)
        assert size_6k < 16_000_000, size_6k
        assert latency_6k < 3 * latency_2k + 0.005, (latency_2k, latency_6k)
        assert await store.compacted_revision() >= rev - 1000
        items, _ = await store.list("/registry/pods/")
        assert len(items) == 201
    finally:
        await store.close()


async def test_history_is_capped_by_count_when_the_time_window_is_long(tmp_path: Path) -> None:
    """A five-minute window under a high write rate would keep every revision: the count
    cap bounds the file anyway, and the revisions past the cap are compacted."""
    db = tmp_path / "state.db"
    store = await SQLiteStore.open(db, history_seconds=3600, min_history=100, max_history=500,
                                   compact_interval=0.05)
    try:
        key = "/registry/pods/ns/busy"
        rev = await store.create(key, VALUE)
        rev = await churn(store, key, rev, 1500)
        size_1500 = disk_usage(db)
        rev = await churn(store, key, rev, 4500)
        size_6000 = disk_usage(db)
        assert size_6000 < 1.5 * size_1500, (size_1500, size_6000)
        assert await store.compacted_revision() >= rev - 600
    finally:
        await store.close()
