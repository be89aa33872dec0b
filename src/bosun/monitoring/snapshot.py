"""The metrics history on disk, so that a control-plane restart keeps the last hour.

The history is a set of fixed-size float32 rings (:mod:`bosun.monitoring.history`); a snapshot
is those rings as they are: one (series x slots) float32 array, each ring's newest slot, and a
JSON index of names and labels, in one numpy ``.npz`` file in the server's data directory.
Every ``snapshot_interval`` seconds (and when the server stops) it is written to a temporary
file, fsynced and renamed over the last one: a crash leaves the old snapshot or the new one,
never half of one, and loses at most one interval. On start the snapshot is read back before
the collector's first round; the restart's gap is NaN cells, as for any silent series.

The server's event loop must not stop for it (~100 MiB at 10,000 pods): the loop only copies
the rings' bytes, a few thousand series at a time with requests let through in between, while
holding the collector's write lock so that no round lands half in the copy; building the
arrays, writing, fsync and rename run in a thread, row by row so that the thread gives the
interpreter back to the loop between rows.

Why numpy and not SQLite (which the store already uses): the rings are arrays and a snapshot
is a copy of memory; ``numpy.savez``/``numpy.load`` (without pickle) write and read it at disk
speed in one call, where SQLite would hold the same blobs a row each, or turn every 10 s round
into inserts and deletes of expired rows (see the history's docstring). numpy is already a
dependency. Disk use is bounded like memory: ``max_series`` x ``retention / resolution`` x 4
bytes plus the labels (1.4 KiB a series at the defaults), one file, twice that while a new one
is written; series that stopped reporting are expired before a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import zipfile
from array import array
from pathlib import Path

import numpy as np
import orjson

from bosun.monitoring.history import MetricsHistory

log = logging.getLogger(__name__)
FORMAT = 1
FILENAME = "metrics-history.npz"

# (name, labels, newest slot, the ring's bytes): what the event loop copies out for a write.
Copied = list[tuple[str, list[list[str]], int, bytes]]


COPY_CHUNK = 2000  # series copied between two yields to the loop (~3 MB at the defaults)


def copy_out(history: MetricsHistory) -> Copied:
    """The rings as they are now, in one go (see :func:`copy_out_async` for the server's way)."""
    return [(s.name, [list(kv) for kv in s.labels], s.last, s.values.tobytes()) for s in history.series()]


async def copy_out_async(history: MetricsHistory, lock: asyncio.Lock) -> Copied:
    """The rings as they are between two rounds, copied :data:`COPY_CHUNK` series at a time
    with the loop free in between (``lock``: the collector's, held while a round writes)."""
    async with lock:
        series = history.series()
        out: Copied = []
        for i in range(0, len(series), COPY_CHUNK):
            out.extend((s.name, [list(kv) for kv in s.labels], s.last, s.values.tobytes())
                       for s in series[i:i + COPY_CHUNK])
            await asyncio.sleep(0)
        return out


def write(path: Path, copied: Copied, resolution: float, capacity: int) -> int:
    """Write a snapshot atomically; its size in bytes. Meant for a thread: the array is filled
    a row at a time (Python bytecode, which lets the interpreter switch threads), not by one
    join of every ring that would hold the interpreter for the whole ~100 MiB copy."""
    values = np.empty((len(copied), capacity), dtype=np.float32)
    for i, c in enumerate(copied):
        values[i] = np.frombuffer(c[3], dtype=np.float32)
    index = orjson.dumps([[name, labels] for name, labels, _, _ in copied])
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, format=np.array([FORMAT], dtype=np.int64), resolution=np.array([resolution]),
                 last=np.array([c[2] for c in copied], dtype=np.int64), values=values,
                 index=np.frombuffer(index, dtype=np.uint8))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # the rename itself, on file systems that need it
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path.stat().st_size


def read(path: Path, history: MetricsHistory) -> int:
    """Put a snapshot's series back into ``history``; how many. A snapshot of another
    resolution cannot be mapped onto this one's slots and is ignored (with a log line)."""
    with np.load(path, allow_pickle=False) as z:
        if int(z["format"][0]) != FORMAT:
            raise ValueError(f"format {int(z['format'][0])}, not {FORMAT}")
        resolution = float(z["resolution"][0])
        if resolution != history.config.resolution:
            log.warning("metrics history snapshot %s has resolution %gs, not %gs: not restored",
                        path, resolution, history.config.resolution)
            return 0
        values, lasts = z["values"], z["last"]
        index = orjson.loads(z["index"].tobytes())
    if values.dtype != np.float32 or values.ndim != 2 or len(values) != len(index) or len(lasts) != len(index):
        raise ValueError("inconsistent arrays")
    restored = 0
    for (name, labels), last, row in zip(index, lasts.tolist(), values, strict=True):
        ring = array("f", row.tobytes())
        restored += history.restore(str(name), {str(k): str(v) for k, v in labels}, int(last), ring)
    return restored


class Snapshots:
    """Writes the history every ``interval`` seconds and at stop; reads it back at start."""

    def __init__(self, history: MetricsHistory, path: Path, interval: float,
                 lock: asyncio.Lock | None = None) -> None:
        self.history = history
        # The collector's write lock (a lone history: a lock of its own).
        self.lock = lock or asyncio.Lock()
        self.path = path
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # size of the last snapshot
        self.restored = 0

    def load(self) -> int:
        if not self.path.exists():
            return 0
        began = time.monotonic()
        try:
            self.restored = read(self.path, self.history)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            # A snapshot that cannot be read is set aside (for a look), not a reason not to start.
            aside = self.path.with_name(self.path.name + ".bad")
            log.warning("metrics history snapshot %s unreadable (%s): moved to %s", self.path, e, aside)
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return 0
        self.history.expire()
        log.info("metrics history: %d series restored from %s in %.2fs", self.restored, self.path,
                 time.monotonic() - began)
        return self.restored

    async def save(self) -> int:
        async with self.lock:
            self.history.expire()
        copied = await copy_out_async(self.history, self.lock)
        self.written = await asyncio.to_thread(write, self.path, copied, self.history.config.resolution,
                                               self.history.capacity)
        return self.written

    async def start(self) -> None:
        await asyncio.to_thread(self.load)
        if self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="metrics-history-snapshots")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.save()
            except OSError as e:
                log.warning("writing the metrics history snapshot %s failed: %s", self.path, e)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.save()
        except OSError as e:
            log.warning("writing the metrics history snapshot %s failed: %s", self.path, e)
