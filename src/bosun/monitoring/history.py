"""The metrics history: one fixed-size ring of samples per series, in memory.

Why not a database: the history is short (default 1 h at 10 s, 360 points a series) and
read mostly as "the newest value" (autoscaling) or "one series over a range" (the query
API, alert rules). PyPI's embedded choices are general databases (SQLite, DuckDB) that
would turn every 10 s ingest of tens of thousands of samples into inserts plus deletes of
expired rows, and whose files need their own size bound; the time-series libraries on PyPI
are clients of servers (Prometheus, InfluxDB) or unmaintained. A ring per series is bounded
by construction: ``max_series`` rings of ``retention / resolution`` cells of 8 bytes (a
float32 value and an int32 slot number), about 2.9 KiB a series at the defaults, and
nothing on disk. The history starts empty when the server starts, as metrics-server's does.

Time is cut into slots of ``resolution`` seconds; a sample lands in the slot of its time
(a later sample in the same slot replaces it), so every series shares one time grid and a
range query is an index walk. Series are found by name, then by label matchers; an index on
(name, namespace) keeps "this namespace's pods" from scanning the cluster.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: a series' identity with its name


def labels_key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    retention: float = 3600.0
    resolution: float = 10.0
    max_series: int = 200_000

    @property
    def slots(self) -> int:
        return max(math.ceil(self.retention / self.resolution), 1)


class Series:
    """One metric's samples for one label set: a ring of (slot, value)."""

    __slots__ = ("labels", "name", "slots", "values")

    def __init__(self, name: str, labels: Labels) -> None:
        self.name = name
        self.labels = labels
        self.slots = array("i")
        self.values = array("f")

    def put(self, slot: int, value: float, capacity: int) -> None:
        n = len(self.slots)
        if n < capacity:  # filling: cells in time order
            if n and slot <= self.slots[n - 1]:
                if slot == self.slots[n - 1]:
                    self.values[n - 1] = value  # a later sample in the same slot wins
                return
            self.slots.append(slot)
            self.values.append(value)
            if n + 1 == capacity:
                self._rotate(capacity)
            return
        i = slot % capacity
        if slot >= self.slots[i]:
            self.slots[i] = slot
            self.values[i] = value

    def _rotate(self, capacity: int) -> None:
        """Once full, cell ``slot % capacity`` holds slot ``slot``: reorder what was appended."""
        slots = array("i", [0] * capacity)
        values = array("f", [math.nan] * capacity)
        for s, v in zip(self.slots, self.values, strict=True):
            slots[s % capacity] = s
            values[s % capacity] = v
        self.slots, self.values = slots, values

    def points(self, first: int, last: int) -> list[tuple[int, float]]:
        """(slot, value) for slots in [first, last], oldest first."""
        out = [(s, v) for s, v in zip(self.slots, self.values, strict=True) if first <= s <= last and v == v]
        out.sort()
        return out

    def latest(self, oldest: int) -> tuple[int, float] | None:
        best: tuple[int, float] | None = None
        for s, v in zip(self.slots, self.values, strict=True):
            if s >= oldest and v == v and (best is None or s > best[0]):
                best = (s, v)
        return best


@dataclass(frozen=True, slots=True)
class Point:
    time: float
    value: float


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    labels: dict[str, str]
    points: list[Point]


class MetricsHistory:
    def __init__(self, config: HistoryConfig | None = None) -> None:
        self.config = config or HistoryConfig()
        self.capacity = self.config.slots
        self._series: dict[tuple[str, Labels], Series] = {}
        self._by_name: dict[str, dict[Labels, Series]] = {}
        self._by_ns: dict[tuple[str, str], dict[Labels, Series]] = {}
        self.dropped = 0  # samples refused because max_series was reached
        self.samples = 0

    def slot(self, t: float) -> int:
        return int(t // self.config.resolution)

    def __len__(self) -> int:
        return len(self._series)

    def add(self, name: str, labels: Mapping[str, str], value: float, t: float | None = None) -> bool:
        """Record one sample; False when the series is new and the history is full."""
        key = (name, labels_key(labels))
        s = self._series.get(key)
        if s is None:
            if len(self._series) >= self.config.max_series:
                self.dropped += 1
                return False
            s = self._series[key] = Series(name, key[1])
            self._by_name.setdefault(name, {})[key[1]] = s
            ns = labels.get("namespace")
            if ns:
                self._by_ns.setdefault((name, ns), {})[key[1]] = s
        s.put(self.slot(time.time() if t is None else t), float(value), self.capacity)
        self.samples += 1
        return True

    def add_many(self, samples: Iterable[tuple[str, Mapping[str, str], float]], t: float) -> int:
        return sum(1 for name, labels, value in samples if self.add(name, labels, value, t))

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def _candidates(self, name: str, matchers: Mapping[str, str]) -> Iterator[Series]:
        ns = matchers.get("namespace")
        pool = self._by_ns.get((name, ns), {}) if ns else self._by_name.get(name, {})
        items = matchers.items()
        for s in pool.values():
            have = dict(s.labels)
            if all(have.get(k) == v for k, v in items):
                yield s

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
            pts = [Point(slot * res, v) for slot, v in s.points(first, last)]
            if pts:
                out.append(Result(name, dict(s.labels), pts))
        out.sort(key=lambda r: sorted(r.labels.items()))
        return out

    def latest(self, name: str, matchers: Mapping[str, str] | None = None,
               max_age: float | None = None) -> list[tuple[dict[str, str], Point]]:
        """The newest value of each matching series no older than ``max_age`` (default:
        three resolutions: a series that stopped reporting is not current)."""
        now = time.time()
        age = max_age if max_age is not None else 3 * self.config.resolution
        oldest = self.slot(now - age)
        out = []
        for s in self._candidates(name, matchers or {}):
            hit = s.latest(oldest)
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
            ns = dict(s.labels).get("namespace")
            if ns:
                bucket = self._by_ns.get((key[0], ns))
                if bucket is not None:
                    bucket.pop(key[1], None)
                    if not bucket:
                        self._by_ns.pop((key[0], ns), None)
        return len(gone)

    def memory_bytes(self) -> int:
        """The rings' payload (what max_series bounds), without Python's per-object overhead."""
        return sum(s.slots.itemsize * len(s.slots) + s.values.itemsize * len(s.values)
                   for s in self._series.values())
