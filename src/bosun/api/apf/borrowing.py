"""Seats lent and borrowed between priority levels (KEP-1040's borrowing, upstream's
``apf_controller`` ``updateBorrowing`` and ``computeConcurrencyAllocation``).

Each level has a nominal limit (its share of the server's), a lower bound (nominal less what
it lends, ``lendablePercent``) and an upper bound (nominal plus what it may borrow,
``borrowingLimitPercent``; unset: the server's whole limit). Every adjustment period each
level's seat demand (seats executing plus seats waiting, integrated over time) gives a
target, ``max(lower bound, smoothed(avg + stdev))``; the sum of the nominal limits is then
shared out so that every level gets ``fairProp * target`` kept within its bounds, one
``fairProp`` for all. A busy level so takes seats an idle one lends, up to its upper bound.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

# How often the current limits are computed again (upstream's borrowingAdjustmentPeriod).
PERIOD = 10.0
# Decay of the smoothed demand per period (half-life of five minutes at PERIOD).
SMOOTHING = 0.977
# A target below this counts as this (upstream's MinTarget).
MIN_TARGET = 0.001


def round_half_away(x: float) -> int:
    """Go's math.Round for non-negative numbers (Python's round() rounds half to even)."""
    return math.floor(x + 0.5)


@dataclass(frozen=True, slots=True)
class Bounds:
    """A level's nominal limit and how far borrowing may move it."""

    nominal: int
    lower: int  # nominal less what it may lend
    upper: int  # nominal plus what it may borrow

    @property
    def lendable(self) -> int:
        return self.nominal - self.lower


def bounds(server_limit: int, shares: int, share_sum: int, lendable_percent: int | None,
           borrowing_percent: int | None) -> Bounds:
    nominal = math.ceil(server_limit * shares / share_sum) if share_sum else 0
    lendable = round_half_away(nominal * lendable_percent / 100) if lendable_percent else 0
    borrowing = (round_half_away(nominal * borrowing_percent / 100) if borrowing_percent is not None
                 else server_limit)
    return Bounds(nominal, nominal - lendable, nominal + borrowing)


class Integrator:
    """A value's time-weighted average, deviation and maximum since the last reset."""

    __slots__ = ("_last", "_max", "_sq", "_start", "_sum", "value")

    def __init__(self) -> None:
        self._start = self._last = time.monotonic()
        self.value = 0
        self._sum = self._sq = 0.0
        self._max = 0

    def set(self, value: int) -> None:
        now = time.monotonic()
        dt = now - self._last
        v = self.value
        self._sum += v * dt
        self._sq += v * v * dt
        self._last = now
        self.value = value
        if value > self._max:
            self._max = value

    def reset(self) -> tuple[float, float, float, float]:
        """(duration, average, deviation, maximum) of the period now ended."""
        self.set(self.value)
        duration = self._last - self._start
        avg = self._sum / duration if duration > 0 else 0.0
        dev = math.sqrt(max(0.0, self._sq / duration - avg * avg)) if duration > 0 else 0.0
        out = (duration, avg, dev, float(self._max))
        self._start = self._last
        self._sum = self._sq = 0.0
        self._max = self.value
        return out


@dataclass(slots=True)
class DemandStats:
    avg: float = 0.0
    stdev: float = 0.0
    high_watermark: float = 0.0
    smoothed: float = 0.0

    def update(self, duration: float, avg: float, stdev: float, high: float) -> None:
        self.high_watermark = high
        if duration <= 0:
            return
        self.avg, self.stdev = avg, stdev
        envelope = avg + stdev
        self.smoothed = max(envelope, SMOOTHING * self.smoothed + (1 - SMOOTHING) * envelope)


@dataclass(frozen=True, slots=True)
class Item:
    lower: float
    upper: float
    target: float


def allocate(required: float, items: list[Item]) -> tuple[list[float], float] | None:
    """Each item's share of ``required`` and the common ``fairProp``: ``fairProp * target``
    kept within the item's bounds, summing to ``required``; None when the bounds cannot sum
    to it (the caller keeps the limits it has)."""
    if not items:
        return [], 0.0
    low = sum(i.lower for i in items)
    high = sum(i.upper for i in items)
    if required < low - 1e-9 or required > high + 1e-9:
        return None
    targets = [max(i.target, MIN_TARGET) for i in items]

    def total(prop: float) -> float:
        return sum(min(i.upper, max(i.lower, prop * t)) for i, t in zip(items, targets, strict=True))

    lo, hi = 0.0, max(i.upper / t for i, t in zip(items, targets, strict=True))
    for _ in range(100):  # bisection: total() is continuous and grows with prop
        mid = (lo + hi) / 2
        if total(mid) < required:
            lo = mid
        else:
            hi = mid
    prop = hi
    return [min(i.upper, max(i.lower, prop * t)) for i, t in zip(items, targets, strict=True)], prop
