"""The values the PromQL evaluator computes with, for all of a query's steps at once.

An instant vector over T steps is a :class:`Vec`: its series' labels and two (series x T)
arrays, the values and whether the series has a sample at that step (a NaN can be a value:
``0/0``). A range vector is a :class:`Win`: the series' samples on a time grid and, for
each step, the columns of its window. An instant query is the one-step case, so instant and
range queries share every line of the semantics.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

NAME = "__name__"
Labels = dict[str, str]


class EvalError(ValueError):
    """An expression that parses but cannot be evaluated on this data (a vector match that is
    not unique): Prometheus answers these 422, not 400."""


def signature(labels: Labels) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def without_name(labels: Labels) -> Labels:
    return {k: v for k, v in labels.items() if k != NAME}


@dataclass(slots=True)
class Vec:
    labels: list[Labels]
    values: np.ndarray  # (series, steps) float64
    present: np.ndarray  # (series, steps) bool
    stamps: np.ndarray | None = None  # the samples' own times (a selector's), for timestamp()

    @staticmethod
    def empty(steps: int) -> Vec:
        return Vec([], np.empty((0, steps)), np.zeros((0, steps), dtype=bool))

    def rows(self, keep: np.ndarray | Sequence[int]) -> Vec:
        idx = np.asarray(keep, dtype=np.int64)
        stamps = None if self.stamps is None else self.stamps[idx]
        return Vec([self.labels[i] for i in idx.tolist()], self.values[idx], self.present[idx], stamps)


@dataclass(slots=True)
class Win:
    """Series' samples at ``times`` (``present`` says which cells hold one) and, per step,
    the window of columns ``lo``..``hi`` (inclusive; empty when ``hi < lo``)."""

    labels: list[Labels]
    values: np.ndarray  # (series, cells)
    present: np.ndarray  # (series, cells) bool
    times: np.ndarray  # (cells,)
    lo: np.ndarray  # (steps,) int
    hi: np.ndarray  # (steps,) int
    seconds: float  # the range's length
    ends: np.ndarray  # (steps,) each window's end time (after offset and @)
    _bounds: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per series and step: the column of the window's first and last sample, and how many
        it holds (first/last are valid columns, meaningful only where the count is above zero); computed for
        every step in one pass of accumulations over the arrays."""
        if self._bounds is not None:
            return self._bounds
        n, cells = self.present.shape
        lo = np.clip(self.lo, 0, cells - 1)
        hi = np.clip(self.hi, 0, cells - 1)
        empty = (self.hi < self.lo) | (self.hi < 0) | (self.lo > cells - 1)
        cols = np.arange(cells)
        counts = np.zeros((n, cells + 1), dtype=np.int64)
        np.cumsum(self.present, axis=1, out=counts[:, 1:])
        count = counts[:, hi + 1] - counts[:, lo]
        count[:, empty] = 0
        newest = np.maximum.accumulate(np.where(self.present, cols, -1), axis=1)
        oldest = np.minimum.accumulate(np.where(self.present, cols, cells)[:, ::-1], axis=1)[:, ::-1]
        self._bounds = (np.minimum(oldest[:, lo], cells - 1), np.maximum(newest[:, hi], 0), count)
        return self._bounds

    def before(self) -> np.ndarray:
        """For each cell, the column of the series' previous sample (-1: none)."""
        n, cells = self.present.shape
        newest = np.maximum.accumulate(np.where(self.present, np.arange(cells), -1), axis=1)
        return np.concatenate([np.full((n, 1), -1), newest[:, :-1]], axis=1)


class Groups:
    """Rows sorted into groups by a key, for reductions of all groups at once (numpy's
    ``reduceat`` over the rows in group order)."""

    def __init__(self, keys: Sequence[Hashable]) -> None:
        index: dict[Hashable, int] = {}
        self.gid = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
        self.keys = list(index)
        self.order = np.argsort(self.gid, kind="stable")
        ordered = self.gid[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(keys) else ordered
        self.sizes = np.diff(np.r_[self.starts, len(keys)])

    def reduce(self, ufunc: np.ufunc, rows: np.ndarray) -> np.ndarray:
        """``ufunc`` over each group's rows: a (groups x steps) array."""
        return ufunc.reduceat(rows[self.order], self.starts, axis=0)

    def members(self) -> list[np.ndarray]:
        return np.split(self.order, self.starts[1:])


def merge(vec: Vec, what: str = "vector cannot contain metrics with the same labelset") -> Vec:
    """Series with the same labels as one (they come from different inputs, at different
    steps); Prometheus' error when two of them have a sample at the same step."""
    sigs = [signature(lb) for lb in vec.labels]
    if len(set(sigs)) == len(sigs):
        return vec
    groups = Groups(sigs)
    if (groups.reduce(np.add, vec.present.astype(np.int64)) > 1).any():
        raise EvalError(what)
    first = groups.order[groups.starts]
    values = groups.reduce(np.add, np.where(vec.present, vec.values, 0.0))
    return Vec([vec.labels[i] for i in first.tolist()], values, groups.reduce(np.logical_or, vec.present))
