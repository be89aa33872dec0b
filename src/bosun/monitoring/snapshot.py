"""The metrics history on disk, so that a control-plane restart keeps the last hour.

The history is a set of fixed-size float32 rings (:mod:`bosun.monitoring.history`); a snapshot
is those rings as they are: one (series x slots) float32 array, each ring's newest slot, and a
JSON index of names and labels, in one numpy ``.npz`` file in the server's data directory.
Every ``snapshot_interval`` seconds (and when the server stops) it is written to a temporary
file, fsynced and renamed over the last one: a crash leaves the old snapshot or the new one,
never half of one, and loses at most one interval. On start the snapshot is read back before
the collector's first round; the restart's gap is NaN cells, as for any silent series.

The server's event loop must not stop for it (~100 MiB at 10,000 pods): the loop only copies
the rings into one preallocated array, a thousand series at a time with requests let through
in between, while holding the collector's write lock so that no round lands half in the
copy; encoding the index, writing, fsync and rename run in a thread (bench/history_snapshot.py
measures the loop's longest pause).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from numpy.lib import format as npformat

from bosun.monitoring.history import MetricsHistory, Series

log = logging.getLogger(__name__)
FORMAT = 1
FILENAME = "metrics-history.npz"

@dataclass(slots=True)
class Copied:
    """The rings as the event loop copied them for a write: one (series x slots) array, each
    ring's newest slot, and the JSON index of names and labels, encoded a chunk at a time. No
    Python object per series is kept: a hundred thousand new containers would set off the
    garbage collector's full passes, which stop every thread for a third of a second; and the
    thread is left only work that mostly lets go of the interpreter (copies to the file, fsync),
    since on a loaded machine a thread descheduled while holding it holds up the loop too."""

    index: list[bytes]  # JSON of the [name, [[key, value], ...]] of a chunk of series, comma-joined
    lasts: np.ndarray
    values: np.ndarray


COPY_CHUNK = 1000  # series copied between two yields to the loop (~1.4 MB, a few ms)
WRITE_ROWS = 1000  # rows of the values array written to the file at a time


def _copy_into(out: Copied, series: list[Series], at: int) -> None:
    for i, s in enumerate(series, at):
        out.values[i] = np.frombuffer(s.values, dtype=np.float32)
        out.lasts[i] = s.last
    out.index.append(b",".join(orjson.dumps((s.name, s.labels)) for s in series))


def _empty(count: int, capacity: int) -> Copied:
    return Copied([], np.empty(count, dtype=np.int64), np.empty((count, capacity), dtype=np.float32))


def copy_out(history: MetricsHistory) -> Copied:
    """The rings as they are now, in one go (see :func:`copy_out_async` for the server's way)."""
    series = history.series()
    out = _empty(len(series), history.capacity)
    _copy_into(out, series, 0)
    return out


async def copy_out_async(history: MetricsHistory, lock: asyncio.Lock) -> Copied:
    """The rings as they are between two rounds, copied :data:`COPY_CHUNK` series at a time
    with the loop free in between (``lock``: the collector's, held while a round writes)."""
    async with lock:
        series = history.series()
        out = _empty(len(series), history.capacity)
        for i in range(0, len(series), COPY_CHUNK):
            _copy_into(out, series[i:i + COPY_CHUNK], i)
            await asyncio.sleep(0)
        return out


def write(path: Path, copied: Copied, resolution: float, capacity: int) -> int:
    """Write a snapshot atomically; its size in bytes (in a thread: see :class:`Copied`)."""
    if copied.values.shape[1:] != (capacity,):
        raise ValueError(f"rings of {copied.values.shape[1:]} slots, not {capacity}")
    index = b"[" + b",".join(part for part in copied.index if part) + b"]"
    tmp = path.with_name(path.name + ".tmp")
    arrays = {"format": np.array([FORMAT], dtype=np.int64), "resolution": np.array([resolution]),
              "last": copied.lasts, "index": np.frombuffer(index, dtype=np.uint8)}
    with open(tmp, "wb") as f:
        # What numpy.savez writes (a zip of .npy files), but the big array a slice of rows at a
        # time: savez copies it out in 16 MiB pieces, each holding the interpreter meanwhile.
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, a in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    npformat.write_array(member, a, allow_pickle=False)
            with z.open("values.npy", "w", force_zip64=True) as member:
                npformat.write_array_header_1_0(member, npformat.header_data_from_array_1_0(copied.values))
                for i in range(0, len(copied.values), WRITE_ROWS):
                    member.write(copied.values[i:i + WRITE_ROWS].tobytes())
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

    async def save(self, expire: bool = True) -> int:
        """Write the snapshot. ``expire``: forget the series silent for the whole retention
        first (a pass over every series on the loop, ~0.1 s at 10,000 pods: the periodic writes
        leave it to the collector's own expiry every 30 rounds)."""
        if expire:
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
                await self.save(expire=False)
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
