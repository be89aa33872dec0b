"""Evaluates a :mod:`bosun.monitoring.promql` tree at "now" against a :class:`Source`.

The semantics are Prometheus' for the subset the parser accepts: a selector's sample is the
newest within the lookback (the history's: three resolutions, so a series that stopped is
gone); ``rate`` is the reset-aware increase over the samples in the range divided by the
time they span (Prometheus also extrapolates to the range's ends; with 10 s samples the
difference is a few percent); functions, arithmetic and aggregations drop the metric name,
comparisons filter and keep it; two vectors match one-to-one on all labels but the name.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bosun.monitoring.history import MetricsHistory
from bosun.monitoring.promql import Aggregate, Binary, Call, Expr, Negate, Number, Selector

NAME = "__name__"
Labels = dict[str, str]


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels  # with __name__ while the metric name is kept
    value: float

    def public_labels(self) -> Labels:
        return {k: v for k, v in self.labels.items() if k != NAME}


class Source(Protocol):
    """What the evaluator reads: the newest values and the samples of a time range of the
    series of ``name`` whose labels include ``equal``."""

    def instant(self, name: str, equal: Mapping[str, str]) -> Iterable[tuple[Labels, float]]: ...

    def window(self, name: str, equal: Mapping[str, str], seconds: float) -> Iterable[
            tuple[Labels, float, float, list[float]]]:
        """(labels, time of the first cell, time between cells, cells with NaN for gaps)."""
        ...


class HistorySource:
    """A :class:`Source` over the metrics history."""

    def __init__(self, history: MetricsHistory) -> None:
        self.history = history

    def instant(self, name: str, equal: Mapping[str, str]) -> Iterable[tuple[Labels, float]]:
        return [(labels, p.value) for labels, p in self.history.latest(name, equal)]

    def window(self, name: str, equal: Mapping[str, str], seconds: float) -> Iterable[
            tuple[Labels, float, float, list[float]]]:
        # A sample is stored at the start of its slot, up to a resolution before it was taken.
        step = self.history.config.resolution
        return [(labels, t0, step, cells) for labels, t0, cells in self.history.windows(name, equal, seconds + step)]


def _div(a: float, b: float) -> float:
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _div}
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


class Evaluator:
    def __init__(self, source: Source) -> None:
        self.source = source

    def evaluate(self, expr: Expr) -> list[Sample] | float:
        """A vector (list of samples) or, for an expression of numbers only, a number."""
        if isinstance(expr, Number):
            return expr.value
        if isinstance(expr, Negate):
            inner = self.evaluate(expr.arg)
            if isinstance(inner, float):
                return -inner
            return [Sample(s.public_labels(), -s.value) for s in inner]
        if isinstance(expr, Selector):
            return self._select(expr)
        if isinstance(expr, Call):
            return self._call(expr)
        if isinstance(expr, Aggregate):
            return self._aggregate(expr)
        return self._binary(expr)

    def vector(self, expr: Expr) -> list[Sample]:
        out = self.evaluate(expr)
        return [Sample({}, out)] if isinstance(out, float) else out

    def _select(self, sel: Selector) -> list[Sample]:
        equal = {m.label: m.value for m in sel.matchers if m.op == "="}
        rest = [m for m in sel.matchers if m.op != "="]
        out = []
        for labels, value in self.source.instant(sel.name, equal):
            if all(m.matches(labels) for m in rest):
                out.append(Sample({**labels, NAME: sel.name}, value))
        return out

    def _call(self, call: Call) -> list[Sample]:
        sel = call.arg
        assert sel.range is not None
        equal = {m.label: m.value for m in sel.matchers if m.op == "="}
        rest = [m for m in sel.matchers if m.op != "="]
        out = []
        for labels, _, step, cells in self.source.window(sel.name, equal, sel.range):
            if not all(m.matches(labels) for m in rest):
                continue
            value = _range_fn(call.function, cells, step, sel.range)
            if value is not None:
                out.append(Sample(labels, value))
        return out

    def _aggregate(self, agg: Aggregate) -> list[Sample]:
        groups: dict[tuple[tuple[str, str], ...], list[float]] = {}
        for s in self.vector(agg.arg):
            if agg.without:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != NAME and k not in agg.labels))
            else:
                key = tuple(sorted((k, s.labels[k]) for k in agg.labels if s.labels.get(k)))
            groups.setdefault(key, []).append(s.value)
        out = []
        for key, values in groups.items():
            if agg.op == "sum":
                v = sum(values)
            elif agg.op == "avg":
                v = sum(values) / len(values)
            elif agg.op == "max":
                v = max(values)
            elif agg.op == "min":
                v = min(values)
            else:
                v = float(len(values))
            out.append(Sample(dict(key), v))
        return out

    def _binary(self, b: Binary) -> list[Sample] | float:
        left, right = self.evaluate(b.left), self.evaluate(b.right)
        if b.op in ("and", "or", "unless"):
            assert not isinstance(left, float) and not isinstance(right, float)
            return _set_op(b.op, left, right)
        if isinstance(left, float) and isinstance(right, float):
            if b.op in COMPARE:
                return float(COMPARE[b.op](left, right))
            return ARITHMETIC[b.op](left, right)
        if isinstance(right, float):
            return _with_scalar(b.op, left, right, scalar_right=True)  # type: ignore[arg-type]
        if isinstance(left, float):
            return _with_scalar(b.op, right, left, scalar_right=False)
        others = {_signature(s.labels): s for s in right}
        out = []
        for s in left:
            other = others.get(_signature(s.labels))
            if other is None:
                continue
            if b.op in COMPARE:
                if COMPARE[b.op](s.value, other.value):
                    out.append(s)
            else:
                out.append(Sample(s.public_labels(), ARITHMETIC[b.op](s.value, other.value)))
        return out


def _with_scalar(op: str, vector: list[Sample], scalar: float, *, scalar_right: bool) -> list[Sample]:
    out = []
    for s in vector:
        a, b = (s.value, scalar) if scalar_right else (scalar, s.value)
        if op in COMPARE:
            if COMPARE[op](a, b):
                out.append(s)
        else:
            out.append(Sample(s.public_labels(), ARITHMETIC[op](a, b)))
    return out


def _set_op(op: str, left: list[Sample], right: list[Sample]) -> list[Sample]:
    theirs = {_signature(s.labels) for s in right}
    if op == "and":
        return [s for s in left if _signature(s.labels) in theirs]
    if op == "unless":
        return [s for s in left if _signature(s.labels) not in theirs]
    mine = {_signature(s.labels) for s in left}
    return left + [s for s in right if _signature(s.labels) not in mine]
