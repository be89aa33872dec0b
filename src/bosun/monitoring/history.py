"""The metrics history: one fixed-size ring of samples per series, in memory.

Why not a database: the history is short (default 1 h at 10 s, 360 points a series) and
read mostly as "the newest value" (autoscaling) or "one series over a range" (the query
API, alert rules). PyPI's embedded choices are general databases (SQLite, DuckDB) that
would turn every 10 s ingest of tens of thousands of samples into inserts plus deletes of
expired rows, and whose files need their own size bound; the time-series libraries on PyPI
are clients of servers (Prometheus, InfluxDB) or unmaintained. A ring per series is bounded
by construction: ``max_series`` rings of ``retention / resolution`` float32 cells, 1.4 KiB
a series at the defaults. The API server writes it to its data directory now and then and
reads it back when it starts (:mod:`bosun.monitoring.snapshot`): a restart keeps the hour.

Time is cut into slots of ``resolution`` seconds; a sample lands in the slot of its time
(a later sample in the same slot replaces it), so every series shares one time grid, a
ring needs no timestamps (cell ``slot % capacity``, valid back from its newest slot) and a
range query is an index walk. Values are float32: 7 significant digits, plenty for usage
and gauges, and half the memory of float64. Series are found by name, then by label matchers; indexes on
(name, namespace) and (name, namespace, pod) keep "this namespace's pods" and "this pod"
from scanning the cluster.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

Labels = tuple[tuple[str, str], ...]
_NANS = [math.nan] * 4096
K = TypeVar("K")  # sorted (name, value) pairs: a series' identity with its name


def labels_key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    retention: float = 3600.0
    resolution: float = 10.0
    max_series: int = 200_000
    snapshot_interval: float = 60.0  # seconds between two writes to disk (0: only at stop)

    @property
    def slots(self) -> int:
        return max(math.ceil(self.retention / self.resolution), 1)


class Series:
    """One metric's samples for one label set: a ring of float32 values, cell ``slot %
    capacity`` for slot ``slot``, valid for the ``capacity`` slots up to ``last``; a slot
    with no sample holds NaN."""

    __slots__ = ("labels", "last", "name", "values")

    def __init__(self, name: str, labels: Labels, capacity: int) -> None:
        self.name = name
        self.labels = labels
        self.last = -1
        self.values = array("f", _NANS[:capacity] if capacity <= len(_NANS) else [math.nan] * capacity)

    def put(self, slot: int, value: float) -> None:
        cap = len(self.values)
        if slot == self.last + 1:  # the usual case: the next slot
            self.values[slot % cap] = value
            self.last = slot
            return
        if slot > self.last:
            # Slots skipped since the last sample (the series was silent) become gaps.
            for s in range(max(self.last + 1, slot - cap + 1), slot):
                self.values[s % cap] = math.nan
            self.last = slot
        elif slot <= self.last - cap:
            return  # older than what the ring holds
        self.values[slot % cap] = value

    def points(self, first: int, last: int, resolution: float) -> list[tuple[float, float]]:
        """(time, value) for slots in [first, last], oldest first (time: the slot's start)."""
        cap = len(self.values)
        values = self.values
        return [(s * resolution, v) for s in range(max(first, self.last - cap + 1), min(last, self.last) + 1)
                for v in (values[s % cap],) if v == v]

    def window(self, first: int, last: int) -> tuple[int, list[float]] | None:
        """The cells of slots [first, last] that the ring still holds, oldest first, NaN for a
        slot without a sample, with the first one's slot; None when none are held. Cut out of
        the ring as (at most two) array slices: no Python work per cell."""
        cap = len(self.values)
        lo, hi = max(first, self.last - cap + 1), min(last, self.last)
        if hi < lo:
            return None
        a, b = lo % cap, hi % cap
        cells = self.values[a:b + 1].tolist() if a <= b else self.values[a:].tolist() + self.values[:b + 1].tolist()
        return lo, cells

    def latest(self, oldest: int, newest: int | None = None) -> tuple[int, float] | None:
        """The newest sample in slots [oldest, newest] (default: up to the newest held)."""
        cap = len(self.values)
        top = self.last if newest is None else min(newest, self.last)
        for s in range(top, max(oldest, self.last - cap + 1) - 1, -1):
            v = self.values[s % cap]
            if v == v:
                return s, float(v)
        return None


@dataclass(frozen=True, slots=True)
class Point:
    time: float
    value: float


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (time, value), oldest first


class MetricsHistory:
    def __init__(self, config: HistoryConfig | None = None) -> None:
        self.config = config or HistoryConfig()
        self.capacity = self.config.slots
        self._series: dict[tuple[str, Labels], Series] = {}
        self._by_name: dict[str, dict[Labels, Series]] = {}
        self._by_ns: dict[tuple[str, str], dict[Labels, Series]] = {}
        self._by_pod: dict[tuple[str, str, str], dict[Labels, Series]] = {}
        self.dropped = 0  # samples refused because max_series was reached
        self.samples = 0

    def slot(self, t: float) -> int:
        return int(t // self.config.resolution)

    def __len__(self) -> int:
        return len(self._series)

    def _new_series(self, name: str, key: Labels, labels: Mapping[str, str]) -> Series | None:
        if len(self._series) >= self.config.max_series:
            self.dropped += 1
            return None
        s = self._series[(name, key)] = Series(name, key, self.capacity)
        self._by_name.setdefault(name, {})[key] = s
        ns = labels.get("namespace")
        if ns:
            self._by_ns.setdefault((name, ns), {})[key] = s
            pod = labels.get("pod")
            if pod:
                self._by_pod.setdefault((name, ns, pod), {})[key] = s
        return s

    def add(self, name: str, labels: Mapping[str, str], value: float, t: float | None = None) -> bool:
        """Record one sample; False when the series is new and the history is full."""
        return self.add_many(((name, labels, value),), time.time() if t is None else t) == 1

    def add_many(self, samples: Iterable[tuple[str, Mapping[str, str], float]], t: float) -> int:
        """Record samples taken at ``t``; returns how many were kept (see ``max_series``)."""
        slot = self.slot(t)
        series = self._series
        kept = 0
        for name, labels, value in samples:
            key = tuple(sorted(labels.items()))
            s = series.get((name, key))
            if s is None:
                s = self._new_series(name, key, labels)
                if s is None:
                    continue
            s.put(slot, value)
            kept += 1
        self.samples += kept
        return kept

    def series(self) -> list[Series]:
        return list(self._series.values())

    def restore(self, name: str, labels: Mapping[str, str], last: int, ring: array[float]) -> int:
        """Put back a series saved as its ring and newest slot (a snapshot's); 1 if kept. A
        ring of another size (the retention changed) is replayed slot by slot."""
        key = labels_key(labels)
        s = self._series.get((name, key)) or self._new_series(name, key, labels)
        if s is None:
            return 0
        if len(ring) == len(s.values) and s.last < 0:
            s.values, s.last = ring, last
            return 1
        cap = len(ring)
        for slot in range(last - cap + 1, last + 1):
            v = ring[slot % cap]
            if v == v:
                s.put(slot, v)
        return 1

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def _candidates(self, name: str, matchers: Mapping[str, str]) -> Iterator[Series]:
        ns, pod = matchers.get("namespace"), matchers.get("pod")
        if ns and pod:
            pool = self._by_pod.get((name, ns, pod), {})
        else:
            pool = self._by_ns.get((name, ns), {}) if ns else self._by_name.get(name, {})
        # What the index already matched needs no second look.
        indexed = ("namespace", "pod") if ns and pod else ("namespace",) if ns else ()
        items = [(k, v) for k, v in matchers.items() if k not in indexed]
        if not items:
            yield from pool.values()
            return
        for s in pool.values():
            have = dict(s.labels)
            if all(have.get(k) == v for k, v in items):
                yield s

    def matching(self, name: str, matchers: Mapping[str, str]) -> list[Series]:
        """The series of ``name`` whose labels include ``matchers`` (the PromQL evaluator reads
        their rings as arrays)."""
        return list(self._candidates(name, matchers))

    def query(self, name: str, matchers: Mapping[str, str] | None = None, start: float | None = None,
              end: float | None = None) -> list[Result]:
        """Every series of ``name`` whose labels include ``matchers``, with its points in
        [start, end] (default: the whole retention up to now)."""
        now = time.time()
        last = self.slot(end if end is not None else now)
        first = self.slot(start) if start is not None else last - self.capacity + 1
        first = max(first, self.slot(now) - self.capacity + 1)
        res = self.config.resolution
        out = []
        for s in self._candidates(name, matchers or {}):
            pts = s.points(first, last, res)
            if pts:
                out.append(Result(name, dict(s.labels), pts))
        out.sort(key=lambda r: sorted(r.labels.items()))
        return out

    def windows(self, name: str, matchers: Mapping[str, str], seconds: float, at: float | None = None
                ) -> list[tuple[dict[str, str], float, list[float]]]:
        """For each matching series, the cells of the ``seconds`` up to ``at`` (default now):
        (labels, the first cell's time, the cells with NaN for gaps); cell i is at ``time + i *
        resolution``. What range functions read (rate, avg_over_time), without a (time, value)
        pair per point."""
        now = time.time()
        end = now if at is None else min(at, now)
        last = self.slot(end)
        first = max(self.slot(end - seconds), self.slot(now) - self.capacity + 1)
        res = self.config.resolution
        out = []
        for s in self._candidates(name, matchers):
            got = s.window(first, last)
            if got is not None:
                out.append((dict(s.labels), got[0] * res, got[1]))
        return out

    def latest(self, name: str, matchers: Mapping[str, str] | None = None,
               max_age: float | None = None, at: float | None = None) -> list[tuple[dict[str, str], Point]]:
        """The newest value at ``at`` (default now) of each matching series no older than
        ``max_age`` (default: three resolutions: a series that stopped reporting is not current)."""
        now = time.time() if at is None else at
        age = max_age if max_age is not None else 3 * self.config.resolution
        oldest, newest = self.slot(now - age), None if at is None else self.slot(at)
        out = []
        for s in self._candidates(name, matchers or {}):
            hit = s.latest(oldest, newest)
            if hit is not None:
                out.append((dict(s.labels), Point(hit[0] * self.config.resolution, hit[1])))
        return out

    def expire(self, now: float | None = None) -> int:
        """Forget series with no sample within the retention (pods long gone)."""
        oldest = self.slot(time.time() if now is None else now) - self.capacity + 1
        gone = [k for k, s in self._series.items() if s.latest(oldest) is None]
        for key in gone:
            s = self._series.pop(key)
            self._by_name.get(key[0], {}).pop(key[1], None)
            if not self._by_name.get(key[0]):
                self._by_name.pop(key[0], None)
            labels = dict(s.labels)
            ns, pod = labels.get("namespace"), labels.get("pod")
            if ns:
                _drop(self._by_ns, (key[0], ns), key[1])
                if pod:
                    _drop(self._by_pod, (key[0], ns, pod), key[1])
        return len(gone)

    def memory_bytes(self) -> int:
        """The rings' payload (what max_series bounds), without Python's per-object overhead."""
        return sum(s.values.itemsize * len(s.values) for s in self._series.values())


def _drop(index: dict[K, dict[Labels, Series]], at: K, labels: Labels) -> None:
    bucket = index.get(at)
    if bucket is not None:
        bucket.pop(labels, None)
        if not bucket:
            del index[at]
