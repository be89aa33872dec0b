"""Evaluates a :mod:`bosun.monitoring.promql` tree against a :class:`~.promql_source.Source`,
at one time (an instant query) or at every step of a range (a range query) in the same pass:
each node's value is a (series x steps) array (:mod:`.promql_vectors`), each selector reads
its series once for the whole range, and operators, aggregations and functions are numpy
operations over those arrays, so a range query costs about one pass over them, not one
instant evaluation per step.

The semantics are Prometheus' (:mod:`.promql_ops`, :mod:`.promql_functions`): a selector's
sample is the newest within the lookback (the history's: three resolutions, so a series
that stopped is gone); ``offset`` moves a selector or subquery back, ``@`` pins it to a time
(``start()``/``end()``: the range query's ends); a subquery ``expr[30m:1m]`` evaluates
``expr`` at the multiples of its step in each window, its default step the history's
resolution.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from bosun.monitoring.promql import (
    Aggregate,
    At,
    Binary,
    Call,
    Expr,
    Negate,
    Number,
    Selector,
    String,
    Subquery,
)
from bosun.monitoring.promql_functions import (
    ELEMENTWISE,
    absent,
    clamp,
    date_part,
    dates,
    elementwise,
    histogram_quantile,
    label_join,
    label_replace,
    over_time,
    rounded,
    sort,
)
from bosun.monitoring.promql_ops import aggregate, apply, scalar_binop, set_op, vector_binop
from bosun.monitoring.promql_signatures import DATE_FUNCTIONS, FUNCTIONS, MATRIX
from bosun.monitoring.promql_source import HistorySource, Source
from bosun.monitoring.promql_vectors import NAME, EvalError, Labels, Vec, Win, signature, without_name

__all__ = ["EvalError", "Evaluator", "HistorySource", "Labels", "Sample", "Source"]

Value: TypeAlias = Vec | np.ndarray | str  # an instant vector, a scalar per step, a string
MAX_SUBQUERY_POINTS = 1_000_000  # a subquery's steps over the whole query
CHUNK_STEPS = 240  # a range query's steps evaluated together (an hour at 15 s)


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels  # with __name__ while the metric name is kept
    value: float

    def public_labels(self) -> Labels:
        return {k: v for k, v in self.labels.items() if k != NAME}


@dataclass(frozen=True, slots=True)
class _Steps:
    times: np.ndarray  # (steps,) the evaluation times
    start: float  # the query's, for @ start() and @ end()
    end: float


class Evaluator:
    def __init__(self, source: Source) -> None:
        self.source = source

    def evaluate(self, expr: Expr, at: float | None = None) -> list[Sample] | float:
        """A vector (list of samples) or, for a scalar expression, a number, at time ``at``
        (default now)."""
        t = time.time() if at is None else at
        out = self._eval(expr, _Steps(np.array([t]), t, t))
        if isinstance(out, np.ndarray):
            return float(out[0])
        assert isinstance(out, Vec)
        rows = np.flatnonzero(out.present[:, 0]).tolist()
        values = out.values[rows, 0].tolist()
        return [Sample(out.labels[r], v) for r, v in zip(rows, values, strict=True)]

    def vector(self, expr: Expr, at: float | None = None) -> list[Sample]:
        out = self.evaluate(expr, at)
        return [Sample({}, out)] if isinstance(out, float) else out

    def evaluate_range(self, expr: Expr, start: float, end: float, step: float
                       ) -> list[tuple[Labels, list[tuple[float, float]]]]:
        """A matrix: each series' (time, value) at the steps start, start + step, ... <= end
        where it has a value, series in label order. The steps are taken CHUNK_STEPS at a time:
        the arrays of a long query over many series stay bounded (``sum(rate(x[5m]))`` over
        every pod for a day at 10 s steps would otherwise hold a few GiB at once)."""
        n = max(math.floor((end - start) / step + 1e-9) + 1, 0)
        times = start + np.arange(n) * step
        series: dict[tuple[tuple[str, str], ...], tuple[Labels, list[tuple[float, float]]]] = {}
        for first in range(0, n, CHUNK_STEPS):
            chunk = times[first:first + CHUNK_STEPS]
            out = self._eval(expr, _Steps(chunk, start, end))
            if isinstance(out, np.ndarray):
                out = Vec([{}], out[None, :], np.ones((1, len(chunk)), dtype=bool))
            assert isinstance(out, Vec)
            stamps = chunk.tolist()
            for r, labels in enumerate(out.labels):
                cols = np.flatnonzero(out.present[r]).tolist()
                if cols:
                    values = out.values[r, cols].tolist()
                    points = series.setdefault(signature(labels), (labels, []))[1]
                    points.extend(zip([stamps[c] for c in cols], values, strict=True))
        return [series[k] for k in sorted(series)]

    # -- the nodes -------------------------------------------------------------------------------

    def _eval(self, expr: Expr, steps: _Steps) -> Value:
        if isinstance(expr, Number):
            return np.full(len(steps.times), expr.value)
        if isinstance(expr, String):
            return expr.value
        if isinstance(expr, Negate):
            inner = self._vector_or_scalar(expr.arg, steps)
            if isinstance(inner, np.ndarray):
                return -inner
            return Vec([without_name(lb) for lb in inner.labels], -inner.values, inner.present)
        if isinstance(expr, Selector):
            return self._select(expr, steps)
        if isinstance(expr, Call):
            return self._call(expr, steps)
        if isinstance(expr, Aggregate):
            param = None if expr.param is None else self._eval(expr.param, steps)
            assert not isinstance(param, Vec)  # the parser's type check
            return aggregate(expr, self._vec(expr.arg, steps), param)
        if isinstance(expr, Binary):
            return self._binary(expr, steps)
        raise EvalError(f"a {type(expr).__name__} is not a value here")

    def _vector_or_scalar(self, expr: Expr, steps: _Steps) -> Vec | np.ndarray:
        out = self._eval(expr, steps)
        assert not isinstance(out, str)  # the parser's type check
        return out

    def _vec(self, expr: Expr, steps: _Steps) -> Vec:
        out = self._eval(expr, steps)
        assert isinstance(out, Vec)
        return out

    def _scalar(self, expr: Expr, steps: _Steps) -> np.ndarray:
        out = self._eval(expr, steps)
        assert isinstance(out, np.ndarray)
        return out

    def _binary(self, b: Binary, steps: _Steps) -> Value:
        left, right = self._vector_or_scalar(b.left, steps), self._vector_or_scalar(b.right, steps)
        if b.op in ("and", "or", "unless"):
            assert isinstance(left, Vec) and isinstance(right, Vec)
            return set_op(b.op, left, right, b.matching)
        if isinstance(left, np.ndarray) and isinstance(right, np.ndarray):
            return apply(b.op, left, right).astype(np.float64)
        if isinstance(right, np.ndarray):
            assert isinstance(left, Vec)
            return scalar_binop(b, left, right, scalar_right=True)
        if isinstance(left, np.ndarray):
            return scalar_binop(b, right, left, scalar_right=False)
        return vector_binop(b, left, right)

    # -- selectors and subqueries ---------------------------------------------------------------------

    @staticmethod
    def _anchored(at: At, offset: float, steps: _Steps) -> np.ndarray:
        """Each step's time as a selector with these modifiers reads it."""
        if at is None:
            base = steps.times
        else:
            pinned = steps.start if at == "start" else steps.end if at == "end" else float(at)
            base = np.full(len(steps.times), pinned)
        return base - offset

    def _window(self, sel: Selector, span: float, steps: _Steps, seconds: float = 0.0, *,
                sparse: bool = False) -> Win:
        """The selector's series with, per step, the cells of the ``span`` seconds before it
        (``seconds``: the range the functions scale to); ``sparse``: read only the cells in
        some step's window (a lookback of a few cells at steps far apart)."""
        ends = self._anchored(sel.at, sel.offset, steps)
        equal = {m.label: m.value for m in sel.matchers if m.op == "="}
        rest = [m for m in sel.matchers if m.op != "="]
        res = self.source.resolution
        hi_slot = np.floor_divide(ends, res).astype(np.int64)
        lo_slot = np.floor_divide(ends - span, res).astype(np.int64)
        first = float(ends.min()) - span if len(ends) else 0.0
        last = float(ends.max()) if len(ends) else 0.0
        only = None
        if sparse and len(ends):
            width = int((hi_slot - lo_slot).max()) + 1
            only = np.unique(np.concatenate([hi_slot - k for k in range(width)]))
        block = self.source.block(sel.name, equal, first, last, only)
        labels, values = block.labels, block.values
        if rest:
            rows = [i for i, lb in enumerate(labels) if all(m.matches(lb) for m in rest)]
            labels, values = [labels[i] for i in rows], values[rows]
        for lb in labels:  # the block's own dicts, made for this read
            lb[NAME] = sel.name
        hi = np.searchsorted(block.slots, hi_slot, side="right") - 1
        lo = np.searchsorted(block.slots, lo_slot, side="left")
        times = block.slots * block.step
        return Win(labels, values, ~np.isnan(values), times.astype(np.float64), lo, hi, seconds, ends)

    def _select(self, sel: Selector, steps: _Steps) -> Vec:
        win = self._window(sel, 3 * self.source.resolution, steps, sparse=True)  # the history's "current"
        n, cells = win.values.shape
        width = int((win.hi - win.lo).max(initial=0)) + 1
        if width > 16:
            _, last, count = win.bounds()
            cols = np.maximum(last, 0)
            vec = Vec(win.labels, np.take_along_axis(win.values, cols, axis=1), count > 0, win.times[cols])
            seen = vec.present.any(axis=1)
            return vec if seen.all() else vec.rows(np.flatnonzero(seen))
        # A lookback of a few cells: look at them newest first, for all series and steps at once.
        values = np.full((n, len(win.hi)), np.nan)
        found = np.zeros((n, len(win.hi)), dtype=bool)
        stamps = np.zeros((n, len(win.hi)))
        for back in range(width):
            col = win.hi - back
            usable = (col >= win.lo) & (col >= 0) & (col < cells)
            if not usable.any():
                continue
            at = np.clip(col, 0, cells - 1)
            cell = win.values[:, at]
            new = ~found & usable[None, :] & ~np.isnan(cell)
            values[new] = cell[new]
            stamps[new] = np.broadcast_to(win.times[at], cell.shape)[new]
            found |= new
        vec = Vec(win.labels, values, found, stamps)
        # Series with no sample at any step go now, before any Python work per series.
        seen = found.any(axis=1)
        return vec if seen.all() else vec.rows(np.flatnonzero(seen))

    def _range(self, expr: Expr, steps: _Steps) -> Win:
        if isinstance(expr, Selector):
            assert expr.range is not None
            # A sample is stored at the start of its slot, up to a resolution before it was taken.
            return self._window(expr, expr.range + self.source.resolution, steps, expr.range)
        assert isinstance(expr, Subquery)
        return self._subquery(expr, steps)

    def _subquery(self, sq: Subquery, steps: _Steps) -> Win:
        """``expr`` evaluated at the multiples of the step in each window (as Prometheus aligns
        them), once for all the outer steps' windows together."""
        step = sq.step or self.source.resolution
        ends = self._anchored(sq.at, sq.offset, steps)
        first = math.floor((float(ends.min()) - sq.range) / step) + 1
        last = math.floor(float(ends.max()) / step)
        if (last - first + 1) > MAX_SUBQUERY_POINTS:
            raise EvalError(f"a subquery of {last - first + 1} steps is more than {MAX_SUBQUERY_POINTS}: "
                            "use a larger step")
        inner = np.arange(first, last + 1) * step
        vec = self._vec(sq.expr, _Steps(inner, steps.start, steps.end))
        lo = np.searchsorted(inner, ends - sq.range, side="right")
        hi = np.searchsorted(inner, ends, side="right") - 1
        if not len(inner):  # a window with no cell at all: one empty column keeps the arrays whole
            inner = np.zeros(1)
            vec = Vec(vec.labels, np.zeros((len(vec.labels), 1)), np.zeros((len(vec.labels), 1), dtype=bool))
        return Win(vec.labels, vec.values, vec.present, inner, lo, hi, sq.range, ends)

    # -- functions -------------------------------------------------------------------------------

    def _call(self, call: Call, steps: _Steps) -> Value:
        return CALLS[call.function](self, call.args, steps)


Handler = Callable[[Evaluator, tuple[Expr, ...], _Steps], Value]


def _text(e: Expr) -> str:
    assert isinstance(e, String)  # the parser's type check
    return e.value


def _ones(steps: _Steps) -> np.ndarray:
    return np.ones((1, len(steps.times)), dtype=bool)


def _timestamp(ev: Evaluator, args: tuple[Expr, ...], steps: _Steps) -> Vec:
    """A selector's samples' own times; other expressions' samples are at the step's time."""
    vec = ev._vec(args[0], steps)
    stamps = vec.stamps if vec.stamps is not None else np.broadcast_to(steps.times, vec.values.shape)
    return Vec([without_name(lb) for lb in vec.labels], np.asarray(stamps, dtype=np.float64), vec.present)


def _scalar_of(ev: Evaluator, args: tuple[Expr, ...], steps: _Steps) -> np.ndarray:
    """The value of the only series at each step, NaN when there is not exactly one."""
    vec = ev._vec(args[0], steps)
    one = vec.present.sum(axis=0) == 1
    return np.where(one, np.where(vec.present, vec.values, 0.0).sum(axis=0), np.nan)


def _date(fn: str) -> Handler:
    def handler(ev: Evaluator, args: tuple[Expr, ...], steps: _Steps) -> Value:
        if not args:  # of vector(time())
            return Vec([{}], date_part(fn, steps.times)[None, :], _ones(steps))
        return dates(fn, ev._vec(args[0], steps))
    return handler


def _over(fn: str) -> Handler:
    return lambda ev, args, steps: over_time(fn, ev._range(args[0], steps))


def _math(fn: str) -> Handler:
    return lambda ev, args, steps: elementwise(fn, ev._vec(args[0], steps))


CALLS: dict[str, Handler] = {
    **{fn: _math(fn) for fn in ELEMENTWISE},
    **{fn: _over(fn) for fn, sig in FUNCTIONS.items() if sig.args == (MATRIX,) and fn != "absent_over_time"},
    **{fn: _date(fn) for fn in DATE_FUNCTIONS},
    "time": lambda ev, args, steps: steps.times.astype(np.float64),
    "pi": lambda ev, args, steps: np.full(len(steps.times), math.pi),
    "vector": lambda ev, args, steps: Vec([{}], ev._scalar(args[0], steps)[None, :], _ones(steps)),
    "scalar": _scalar_of,
    "timestamp": _timestamp,
    "absent": lambda ev, args, steps: absent(_equal_labels(args[0]), ev._vec(args[0], steps).present.any(axis=0)),
    "absent_over_time": lambda ev, args, steps: absent(
        _equal_labels(args[0]), (ev._range(args[0], steps).bounds()[2] > 0).any(axis=0)),
    "quantile_over_time": lambda ev, args, steps: over_time(
        "quantile_over_time", ev._range(args[1], steps), ev._scalar(args[0], steps)),
    "predict_linear": lambda ev, args, steps: over_time(
        "predict_linear", ev._range(args[0], steps), ev._scalar(args[1], steps)),
    "histogram_quantile": lambda ev, args, steps: histogram_quantile(
        ev._scalar(args[0], steps), ev._vec(args[1], steps)),
    "round": lambda ev, args, steps: rounded(
        ev._vec(args[0], steps), ev._scalar(args[1], steps) if len(args) > 1 else np.ones(len(steps.times))),
    "clamp": lambda ev, args, steps: clamp(ev._vec(args[0], steps), ev._scalar(args[1], steps),
                                           ev._scalar(args[2], steps)),
    "clamp_min": lambda ev, args, steps: clamp(ev._vec(args[0], steps), ev._scalar(args[1], steps), None),
    "clamp_max": lambda ev, args, steps: clamp(ev._vec(args[0], steps), None, ev._scalar(args[1], steps)),
    "label_replace": lambda ev, args, steps: label_replace(ev._vec(args[0], steps), *map(_text, args[1:])),
    "label_join": lambda ev, args, steps: label_join(ev._vec(args[0], steps), _text(args[1]), _text(args[2]),
                                                     [_text(a) for a in args[3:]]),
    "sort": lambda ev, args, steps: sort(ev._vec(args[0], steps), descending=False),
    "sort_desc": lambda ev, args, steps: sort(ev._vec(args[0], steps), descending=True),
}


def _equal_labels(expr: Expr) -> Labels:
    """absent()'s labels: a selector's equality matchers (a label matched twice is left out)."""
    sel = expr.expr if isinstance(expr, Subquery) else expr
    if not isinstance(sel, Selector):
        return {}
    equal = [m for m in sel.matchers if m.op == "="]
    names = [m.label for m in equal]
    return {m.label: m.value for m in equal if names.count(m.label) == 1}
