"""What the PromQL evaluator reads: one metric's series over a stretch of the history's time
grid, as a numpy array, cut out of the rings in one gather (no Python work per cell)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bosun.monitoring.history import MetricsHistory


@dataclass(frozen=True, slots=True)
class Block:
    """Series of one metric: ``values[i, c]`` is series i's sample in slot ``slots[c]`` (NaN:
    none), a slot lasting ``step`` seconds (a sample is stored at the start of its slot)."""

    labels: list[dict[str, str]]  # made for this block: the reader may change them
    values: np.ndarray
    slots: np.ndarray  # ascending
    step: float


class Source(Protocol):
    @property
    def resolution(self) -> float:
        """The grid's step: the time between two samples of a series."""
        ...

    def block(self, name: str, equal: Mapping[str, str], first: float, last: float,
              only: np.ndarray | None = None) -> Block:
        """The series of ``name`` whose labels include ``equal``, over the slots of the times
        ``first`` to ``last`` (at least one), or only the ``only`` ones of them (ascending)."""
        ...


class HistorySource:
    """A :class:`Source` over the metrics history."""

    def __init__(self, history: MetricsHistory) -> None:
        self.history = history

    @property
    def resolution(self) -> float:
        return self.history.config.resolution

    def block(self, name: str, equal: Mapping[str, str], first: float, last: float,
              only: np.ndarray | None = None) -> Block:
        h = self.history
        now = h.slot(time.time())
        # Nothing older than the retention or newer than now is held: the block stays small
        # even for a query that reaches far.
        lo = max(h.slot(first), now - h.capacity + 1)
        hi = max(min(h.slot(last), now + 1), lo)
        slots = np.arange(lo, hi + 1, dtype=np.int64)
        if only is not None:
            slots = only[(only >= lo) & (only <= hi)] if len(only) else slots[:1]
            slots = slots if len(slots) else np.array([lo], dtype=np.int64)
        series = h.matching(name, equal)
        labels = [dict(s.labels) for s in series]
        if not series:
            return Block(labels, np.empty((0, len(slots))), slots, h.config.resolution)
        cap, first_slot, width = h.capacity, int(slots[0]), int(slots[-1] - slots[0]) + 1
        # One copy of the cells wanted from every ring (bytes.join reads each array's buffer:
        # no Python object per cell), then one gather.
        if width >= cap:
            parts = iter([s.values for s in series])
            cells = np.frombuffer(b"".join(parts), dtype=np.float32).reshape(len(series), cap)
            values = cells[:, slots % cap].astype(np.float64)
        else:
            a, b = first_slot % cap, (first_slot + width - 1) % cap
            cut = [s.values[a:b + 1] for s in series] if a <= b else [s.values[a:] + s.values[:b + 1] for s in series]
            cells = np.frombuffer(b"".join(cut), dtype=np.float32).reshape(len(series), width)
            values = cells[:, slots - first_slot].astype(np.float64)
        newest = np.fromiter((s.last for s in series), dtype=np.int64, count=len(series))[:, None]
        held = (slots[None, :] <= newest) & (slots[None, :] > newest - cap)
        values[~held] = np.nan
        return Block(labels, values, slots, h.config.resolution)
