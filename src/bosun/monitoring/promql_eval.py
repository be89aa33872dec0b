"""Evaluates a :mod:`bosun.monitoring.promql` tree at a time (default now) against a :class:`Source`.

The semantics are Prometheus' for the subset the parser accepts: a selector's sample is the
newest within the lookback (the history's: three resolutions, so a series that stopped is
gone); ``rate`` is the reset-aware increase over the samples in the range divided by the
time they span (Prometheus also extrapolates to the range's ends; with 10 s samples the
difference is a few percent); functions, arithmetic and aggregations drop the metric name,
comparisons filter and keep it (with ``bool`` they answer 0/1 and drop it); two vectors
match one-to-one on all labels but the name unless ``on``/``ignoring`` say otherwise, and
many-to-one or one-to-many with ``group_left``/``group_right``, with Prometheus' errors when a
match is not unique (:class:`EvalError`). ``offset`` moves a selector's time back. A range
query (:meth:`Evaluator.evaluate_range`) is an instant evaluation at every step.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bosun.monitoring.history import MetricsHistory
from bosun.monitoring.promql import (
    COMPARISONS,
    ONE_TO_MANY,
    ONE_TO_ONE,
    Aggregate,
    Binary,
    Call,
    Expr,
    Negate,
    Number,
    Selector,
    VectorMatching,
)

NAME = "__name__"
Labels = dict[str, str]


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels  # with __name__ while the metric name is kept
    value: float

    def public_labels(self) -> Labels:
        return {k: v for k, v in self.labels.items() if k != NAME}


class EvalError(ValueError):
    """An expression that parses but cannot be evaluated on this data (a vector match that is
    not unique): Prometheus answers these 422, not 400."""


class Source(Protocol):
    """What the evaluator reads: the newest values at ``at`` and the samples of the time range
    ending at ``at`` of the series of ``name`` whose labels include ``equal``."""

    def instant(self, name: str, equal: Mapping[str, str], at: float) -> Iterable[tuple[Labels, float]]: ...

    def window(self, name: str, equal: Mapping[str, str], seconds: float, at: float) -> Iterable[
            tuple[Labels, float, float, list[float]]]:
        """(labels, time of the first cell, time between cells, cells with NaN for gaps)."""
        ...

    def for_range(self, start: float, end: float) -> RangeSource:
        """The source a range query from ``start`` to ``end`` reads (it may read ahead)."""
        ...


class RangeSource(Source, Protocol):
    """A source for one range query: the evaluator says which step it is at."""

    step_time: float


class HistorySource:
    """A :class:`Source` over the metrics history."""

    def __init__(self, history: MetricsHistory) -> None:
        self.history = history

    def instant(self, name: str, equal: Mapping[str, str], at: float) -> Iterable[tuple[Labels, float]]:
        return [(labels, p.value) for labels, p in self.history.latest(name, equal, at=at)]

    def window(self, name: str, equal: Mapping[str, str], seconds: float, at: float) -> Iterable[
            tuple[Labels, float, float, list[float]]]:
        # A sample is stored at the start of its slot, up to a resolution before it was taken.
        step = self.history.config.resolution
        return [(labels, t0, step, cells)
                for labels, t0, cells in self.history.windows(name, equal, seconds + step, at)]

    def for_range(self, start: float, end: float) -> HistoryRange:
        return HistoryRange(self, start, end)


class _Block:
    """One selector's series over a whole range query, as a (series x slots) array, and for
    each cell the index of the newest sample at or before it (-1: none yet)."""

    def __init__(self, history: MetricsHistory, rows: list[tuple[Labels, float, list[float]]], base: int,
                 length: int) -> None:
        self.history, self.base = history, base
        self.labels = [labels for labels, _, _ in rows]
        self.values = np.full((len(rows), max(length, 1)), np.nan, dtype=np.float32)
        res = history.config.resolution
        for r, (_, t0, cells) in enumerate(rows):
            at = round(t0 / res) - base
            lo, hi = max(at, 0), min(at + len(cells), length)
            if hi > lo:
                self.values[r, lo:hi] = cells[lo - at:hi - at]
        index = np.where(np.isnan(self.values), -1, np.arange(self.values.shape[1]))
        self.newest = np.maximum.accumulate(index, axis=1)

    def at(self, at: float, lookback: float) -> list[tuple[Labels, float]]:
        """As the history's ``latest(at=at)``: the newest sample no older than the lookback."""
        hi = self.history.slot(at) - self.base
        if hi < 0 or not self.labels:
            return []
        lo = self.history.slot(at - lookback) - self.base
        newest = self.newest[:, min(hi, self.values.shape[1] - 1)]
        rows = np.nonzero(newest >= max(lo, 0))[0]
        values = self.values[rows, newest[rows]].tolist()
        return [(self.labels[r], v) for r, v in zip(rows.tolist(), values, strict=True)]


class HistoryRange:
    """A :class:`RangeSource` over the history: each selector's series are read once for the
    whole range (one walk of the rings, not one per step) and each step's newest values are
    picked for all series at once with numpy; range functions read the history as usual."""

    def __init__(self, source: HistorySource, start: float, end: float) -> None:
        self.source, self.history = source, source.history
        self.start, self.end = start, end
        self.step_time = start
        self.lookback = 3 * self.history.config.resolution  # the history's "current"
        self._blocks: dict[tuple[str, tuple[tuple[str, str], ...], float], _Block] = {}

    def instant(self, name: str, equal: Mapping[str, str], at: float) -> Iterable[tuple[Labels, float]]:
        offset = self.step_time - at
        key = (name, tuple(sorted(equal.items())), offset)
        block = self._blocks.get(key)
        if block is None:
            first, last = self.start - offset - self.lookback, min(self.end - offset, time.time())
            base = self.history.slot(first)
            rows = self.history.windows(name, equal, last - first, last) if last >= first else []
            block = self._blocks[key] = _Block(self.history, rows, base, self.history.slot(last) - base + 1)
        return block.at(at, self.lookback)

    def window(self, name: str, equal: Mapping[str, str], seconds: float, at: float) -> Iterable[
            tuple[Labels, float, float, list[float]]]:
        return self.source.window(name, equal, seconds, at)

    def for_range(self, start: float, end: float) -> HistoryRange:
        return self.source.for_range(start, end)


def _div(a: float, b: float) -> float:
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def _mod(a: float, b: float) -> float:
    return math.nan if b == 0 or math.isinf(a) else math.fmod(a, b)


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _div, "%": _mod}
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}


def _counter_change(cells: list[float]) -> tuple[float, int] | None:
    """A counter's increase over the cells (a value lower than the one before is a reset, so
    it counts from zero) and the number of cells between its first and last sample; one pass,
    as this runs for every series of a rate()."""
    first = last = -1
    total = prev = 0.0
    for i, v in enumerate(cells):
        if v != v:
            continue
        if first < 0:
            first = i
        else:
            total += v - prev if v >= prev else v
        prev, last = v, i
    return (total, last - first) if last > first else None


def _range_fn(fn: str, cells: list[float], step: float, seconds: float) -> float | None:
    """``fn`` over one series' cells (NaN: no sample in that slot)."""
    if fn in ("rate", "increase"):
        change = _counter_change(cells)
        if change is None:
            return None
        per_second = change[0] / (change[1] * step)
        return per_second if fn == "rate" else per_second * seconds
    values = [v for v in cells if v == v]
    if not values:
        return None
    if fn == "avg_over_time":
        return sum(values) / len(values)
    if fn == "max_over_time":
        return max(values)
    if fn == "min_over_time":
        return min(values)
    if fn == "sum_over_time":
        return sum(values)
    if fn == "count_over_time":
        return float(len(values))
    return values[-1]  # last_over_time


def _signature(labels: Labels) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != NAME))


def _match_key(labels: Labels, m: VectorMatching) -> tuple[tuple[str, str], ...]:
    """What two samples must share to pair up (an empty label is an absent one)."""
    if m.on:
        return tuple((k, labels[k]) for k in sorted(m.labels) if labels.get(k))
    return tuple(sorted((k, v) for k, v in labels.items() if k != NAME and k not in m.labels))


def _result_labels(many: Labels, one: Labels, drop_name: bool, m: VectorMatching) -> Labels:
    """A pair's labels, as Prometheus' resultMetric: the "many" side's (for one-to-one, only the
    ``on`` labels or all but the ``ignoring`` ones), plus ``group_x`` labels from the "one" side."""
    out = dict(many)
    if drop_name:
        out.pop(NAME, None)
    if m.card == ONE_TO_ONE:
        if m.on:
            out = {k: v for k, v in out.items() if k in m.labels}
        else:
            for k in m.labels:
                out.pop(k, None)
    for k in m.include:
        if one.get(k):
            out[k] = one[k]
        else:
            out.pop(k, None)
    return out


def _show(key: tuple[tuple[str, str], ...]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"


def _quantile(phi: float, values: list[float]) -> float:
    """Prometheus' quantile: linear interpolation between the closest ranks."""
    if phi != phi:
        return math.nan
    if phi < 0:
        return -math.inf
    if phi > 1:
        return math.inf
    ordered = sorted(values)
    rank = phi * (len(ordered) - 1)
    lo = max(0, math.floor(rank))
    hi = min(len(ordered) - 1, lo + 1)
    weight = rank - math.floor(rank)
    return ordered[lo] * (1 - weight) + ordered[hi] * weight


def _reduce(op: str, values: list[float]) -> float:
    if op == "sum":
        return sum(values)
    if op == "avg":
        return sum(values) / len(values)
    if op == "max":
        return max(values)
    if op == "min":
        return min(values)
    if op == "group":
        return 1.0
    if op in ("stddev", "stdvar"):
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        return math.sqrt(var) if op == "stddev" else var
    return float(len(values))  # count


class Evaluator:
    def __init__(self, source: Source) -> None:
        self.source = source

    def evaluate(self, expr: Expr, at: float | None = None) -> list[Sample] | float:
        """A vector (list of samples) or, for an expression of numbers only, a number, at time
        ``at`` (default now)."""
        return self._eval(expr, time.time() if at is None else at)

    def evaluate_range(self, expr: Expr, start: float, end: float, step: float
                       ) -> list[tuple[Labels, list[tuple[float, float]]]]:
        """A matrix: each series' (time, value) at the steps start, start + step, ... <= end
        where it has a value, series in label order."""
        series: dict[tuple[tuple[str, str], ...], tuple[Labels, list[tuple[float, float]]]] = {}
        n = math.floor((end - start) / step + 1e-9) + 1
        source = self.source.for_range(start, end)
        ranged = Evaluator(source)
        for i in range(max(n, 0)):
            t = start + i * step
            source.step_time = t
            for s in ranged.vector(expr, t):
                key = tuple(sorted(s.labels.items()))
                series.setdefault(key, (s.labels, []))[1].append((t, s.value))
        return [series[k] for k in sorted(series)]

    def vector(self, expr: Expr, at: float | None = None) -> list[Sample]:
        out = self.evaluate(expr, at)
        return [Sample({}, out)] if isinstance(out, float) else out

    def _vector(self, expr: Expr, at: float) -> list[Sample]:
        out = self._eval(expr, at)
        return [Sample({}, out)] if isinstance(out, float) else out

    def _eval(self, expr: Expr, at: float) -> list[Sample] | float:
        if isinstance(expr, Number):
            return expr.value
        if isinstance(expr, Negate):
            inner = self._eval(expr.arg, at)
            if isinstance(inner, float):
                return -inner
            return [Sample(s.public_labels(), -s.value) for s in inner]
        if isinstance(expr, Selector):
            return self._select(expr, at)
        if isinstance(expr, Call):
            return self._call(expr, at)
        if isinstance(expr, Aggregate):
            return self._aggregate(expr, at)
        return self._binary(expr, at)

    def _select(self, sel: Selector, at: float) -> list[Sample]:
        equal = {m.label: m.value for m in sel.matchers if m.op == "="}
        rest = [m for m in sel.matchers if m.op != "="]
        out = []
        for labels, value in self.source.instant(sel.name, equal, at - sel.offset):
            if all(m.matches(labels) for m in rest):
                out.append(Sample({**labels, NAME: sel.name}, value))
        return out

    def _call(self, call: Call, at: float) -> list[Sample]:
        sel = call.arg
        assert sel.range is not None
        equal = {m.label: m.value for m in sel.matchers if m.op == "="}
        rest = [m for m in sel.matchers if m.op != "="]
        out = []
        for labels, _, step, cells in self.source.window(sel.name, equal, sel.range, at - sel.offset):
            if not all(m.matches(labels) for m in rest):
                continue
            value = _range_fn(call.function, cells, step, sel.range)
            if value is not None:
                out.append(Sample(labels, value))
        return out

    def _aggregate(self, agg: Aggregate, at: float) -> list[Sample]:
        groups: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
        for s in self._vector(agg.arg, at):
            if agg.without:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != NAME and k not in agg.labels))
            else:
                key = tuple(sorted((k, s.labels[k]) for k in agg.labels if s.labels.get(k)))
            groups.setdefault(key, []).append(s)
        param = math.nan
        if agg.param is not None:
            got = self._eval(agg.param, at)
            assert isinstance(got, float)  # the parser allows only numbers there
            param = got
        out = []
        for key, samples in groups.items():
            if agg.op in ("topk", "bottomk"):
                # The samples themselves, labels and all: topk picks series, it does not sum them.
                k = int(param) if param == param else 0
                ordered = sorted(samples, key=lambda s: s.value, reverse=agg.op == "topk")
                out.extend(ordered[:max(k, 0)])
                continue
            values = [s.value for s in samples]
            v = _quantile(param, values) if agg.op == "quantile" else _reduce(agg.op, values)
            out.append(Sample(dict(key), v))
        return out

    def _binary(self, b: Binary, at: float) -> list[Sample] | float:
        left, right = self._eval(b.left, at), self._eval(b.right, at)
        if b.op in ("and", "or", "unless"):
            assert not isinstance(left, float) and not isinstance(right, float)
            return _set_op(b.op, left, right, b.matching)
        if isinstance(left, float) and isinstance(right, float):
            if b.op in COMPARE:
                return float(COMPARE[b.op](left, right))
            return ARITHMETIC[b.op](left, right)
        if isinstance(right, float):
            return _with_scalar(b, left, right, scalar_right=True)  # type: ignore[arg-type]
        if isinstance(left, float):
            return _with_scalar(b, right, left, scalar_right=False)
        return _vector_binop(b, left, right)


def _vector_binop(b: Binary, left: list[Sample], right: list[Sample]) -> list[Sample]:
    """Two vectors, matched as ``b.matching`` says; the errors are Prometheus'."""
    m = b.matching
    many, one = (right, left) if m.card == ONE_TO_MANY else (left, right)
    side = "left" if m.card == ONE_TO_MANY else "right"
    ones: dict[tuple[tuple[str, str], ...], Sample] = {}
    for s in one:
        key = _match_key(s.labels, m)
        if key in ones:
            raise EvalError(f"found duplicate series for the match group {_show(key)} on the {side} hand-side "
                            "of the operation; many-to-many matching not allowed: matching labels must be unique "
                            "on one side")
        ones[key] = s
    compare = b.op in COMPARISONS
    drop_name = not compare or b.bool_
    out: list[Sample] = []
    matched: set[tuple[tuple[str, str], ...]] = set()
    made: set[tuple[tuple[str, str], ...]] = set()
    for s in many:
        key = _match_key(s.labels, m)
        other = ones.get(key)
        if other is None:
            continue
        lv, rv = (other.value, s.value) if m.card == ONE_TO_MANY else (s.value, other.value)
        if compare:
            hit = COMPARE[b.op](lv, rv)
            if not hit and not b.bool_:
                continue
            value = float(hit) if b.bool_ else lv
        else:
            value = ARITHMETIC[b.op](lv, rv)
        labels = _result_labels(s.labels, other.labels, drop_name, m)
        if m.card == ONE_TO_ONE:
            if key in matched:
                raise EvalError(f"multiple matches for labels {_show(key)}: many-to-one matching must be explicit "
                                "(group_left/group_right)")
            matched.add(key)
        else:
            result = tuple(sorted(labels.items()))
            if result in made:
                raise EvalError(f"multiple matches for labels {_show(result)}: grouping labels must ensure "
                                "unique matches")
            made.add(result)
        out.append(Sample(labels, value))
    return out


def _with_scalar(b: Binary, vector: list[Sample], scalar: float, *, scalar_right: bool) -> list[Sample]:
    out = []
    for s in vector:
        a, c = (s.value, scalar) if scalar_right else (scalar, s.value)
        if b.op in COMPARE:
            hit = COMPARE[b.op](a, c)
            if b.bool_:
                out.append(Sample(s.public_labels(), float(hit)))
            elif hit:
                out.append(s)
        else:
            out.append(Sample(s.public_labels(), ARITHMETIC[b.op](a, c)))
    return out


def _set_op(op: str, left: list[Sample], right: list[Sample], m: VectorMatching) -> list[Sample]:
    theirs = {_match_key(s.labels, m) for s in right}
    if op == "and":
        return [s for s in left if _match_key(s.labels, m) in theirs]
    if op == "unless":
        return [s for s in left if _match_key(s.labels, m) not in theirs]
    mine = {_match_key(s.labels, m) for s in left}
    return left + [s for s in right if _match_key(s.labels, m) not in mine]
