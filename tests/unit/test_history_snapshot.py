"""The metrics history's snapshot file: written atomically, read back slot for slot, replayed
into a history of another retention, ignored at another resolution, and set aside (not fatal)
when it cannot be read."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

from bosun.monitoring.history import HistoryConfig, MetricsHistory
from bosun.monitoring.snapshot import COPY_CHUNK, FILENAME, Snapshots, copy_out, read, write


def filled(config: HistoryConfig, now: float) -> MetricsHistory:
    h = MetricsHistory(config)
    for i in range(50):
        if i % 7:  # gaps stay gaps
            h.add("cpu", {"pod": "a"}, float(i), now - 49 + i)
        h.add("mem", {"pod": "b", "namespace": "x"}, 100.0 + i, now - 49 + i)
    return h


def points(h: MetricsHistory, name: str) -> list[tuple[float, float]]:
    (r,) = h.query(name)
    return r.points


def test_round_trip_resize_and_resolution(tmp_path: Path) -> None:
    now = time.time()
    config = HistoryConfig(retention=60.0, resolution=1.0)
    h = filled(config, now)
    path = tmp_path / FILENAME
    size = write(path, copy_out(h), config.resolution, h.capacity)
    assert size == path.stat().st_size and not (tmp_path / (FILENAME + ".tmp")).exists()
    assert size < 2 * 60 * 4 + 4096  # two rings of 60 float32 cells and the index

    back = MetricsHistory(config)
    assert read(path, back) == 2
    assert points(back, "cpu") == points(h, "cpu") and points(back, "mem") == points(h, "mem")
    assert [v for _, v in points(back, "cpu")][:7] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]
    assert back.latest("mem", {"namespace": "x"})[0][1].value == 149.0  # the indexes are rebuilt

    shorter = MetricsHistory(HistoryConfig(retention=20.0, resolution=1.0))  # the last 20 slots replayed
    assert read(path, shorter) == 2
    assert points(shorter, "mem") == points(h, "mem")[-20:]

    other = MetricsHistory(HistoryConfig(retention=60.0, resolution=10.0))
    assert read(path, other) == 0 and len(other) == 0


async def test_snapshots_load_save_and_a_bad_file(tmp_path: Path) -> None:
    now = time.time()
    config = HistoryConfig(retention=60.0, resolution=1.0, snapshot_interval=0)
    h = filled(config, now)
    path = tmp_path / FILENAME
    await Snapshots(h, path, 0).save()
    fresh = MetricsHistory(config)
    snaps = Snapshots(fresh, path, 0)
    assert snaps.load() == 2 and points(fresh, "cpu") == points(h, "cpu")
    assert all(not math.isnan(v) for _, v in points(fresh, "mem"))

    whole = path.read_bytes()
    for bad in (b"not a snapshot", whole[:len(whole) // 2], whole[:-40]):
        path.write_bytes(bad)
        broken = MetricsHistory(config)
        assert Snapshots(broken, path, 0).load() == 0 and len(broken) == 0
        assert (tmp_path / (FILENAME + ".bad")).read_bytes() == bad and not path.exists()


async def test_save_lets_the_loop_run_and_copies_between_two_rounds(tmp_path: Path) -> None:
    """The copy is made a chunk at a time with the loop free in between (requests go on), under
    the collector's write lock: a round that comes meanwhile lands after the copy, not half in it."""
    config = HistoryConfig(retention=60.0, resolution=1.0)
    now = time.time()
    h = MetricsHistory(config)
    pods = [f"p{i}" for i in range(3 * COPY_CHUNK)]
    h.add_many((("cpu", {"pod": p}, 1.0) for p in pods), now)
    lock = asyncio.Lock()
    path = tmp_path / FILENAME
    snapshots = Snapshots(h, path, 0.0, lock)
    during: list[bool] = []

    async def serving() -> None:  # what else the server's loop does: answer requests
        while True:
            during.append(lock.locked())
            await asyncio.sleep(0)

    async def collection_round() -> None:
        async with lock:
            h.add_many((("cpu", {"pod": p}, 2.0) for p in pods), now)

    other = asyncio.create_task(serving())
    try:
        save = asyncio.create_task(snapshots.save())
        await asyncio.sleep(0)  # the copy has begun (and holds the lock)
        landing = asyncio.create_task(collection_round())
        assert await save == path.stat().st_size
        await landing
    finally:
        other.cancel()
    # The loop served others between the copy's chunks (three chunks: at least two gaps).
    assert sum(during) >= 2, during
    back = MetricsHistory(config)
    assert read(path, back) == len(pods)
    assert {r.points[-1][1] for r in back.query("cpu")} == {1.0}  # none of the later round
    assert {r.points[-1][1] for r in h.query("cpu")} == {2.0}
    assert not (tmp_path / (FILENAME + ".tmp")).exists()
