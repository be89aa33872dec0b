"""PromQL's functions, every step at once.

Range functions read a :class:`~.promql_vectors.Win`. The ones that depend only on a
window's first and last samples (``rate``, ``increase``, ``delta``, ``irate``, ``idelta``,
``changes``, ``resets``, ``count``/``last``/``present_over_time``) are differences of running
sums taken in one pass over the arrays; the others run numpy over each step's columns. As
the rest of Bosun's history, ``rate`` is the reset-aware increase over the samples in the
range divided by the time they span (Prometheus also extrapolates to the range's ends; at
10 s samples the difference is a few percent); ``increase`` and ``delta`` are that rate times
the range. Functions drop the metric name except those that keep the sample's own value
(``last_over_time``, ``sort``, ``label_replace``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from bosun.monitoring.promql_ops import quantile
from bosun.monitoring.promql_vectors import NAME, Groups, Labels, Vec, Win, merge, without_name

Array = np.ndarray

ELEMENTWISE: dict[str, Callable[[Array], Array]] = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "ln": np.log, "log2": np.log2,
    "log10": np.log10, "sqrt": np.sqrt, "sgn": np.sign, "acos": np.arccos, "acosh": np.arccosh,
    "asin": np.arcsin, "asinh": np.arcsinh, "atan": np.arctan, "atanh": np.arctanh, "cos": np.cos,
    "cosh": np.cosh, "sin": np.sin, "sinh": np.sinh, "tan": np.tan, "tanh": np.tanh, "deg": np.degrees,
    "rad": np.radians}


def elementwise(fn: str, vec: Vec) -> Vec:
    with np.errstate(all="ignore"):
        return Vec([without_name(lb) for lb in vec.labels], ELEMENTWISE[fn](vec.values), vec.present)


def rounded(vec: Vec, to_nearest: Array) -> Vec:
    """Prometheus' round: halves up, to the nearest multiple of ``to_nearest``."""
    with np.errstate(all="ignore"):
        inverse = 1.0 / to_nearest[None, :]
        return Vec([without_name(lb) for lb in vec.labels], np.floor(vec.values * inverse + 0.5) / inverse,
                   vec.present)


def clamp(vec: Vec, low: Array | None, high: Array | None) -> Vec:
    values = vec.values
    present = vec.present
    if low is not None:
        values = np.maximum(values, low[None, :])
    if high is not None:
        values = np.minimum(values, high[None, :])
    if low is not None and high is not None:
        present = present & ~(high < low)[None, :]  # an empty answer, as Prometheus' clamp
    return Vec([without_name(lb) for lb in vec.labels], values, present)


def _datetime(values: Array) -> tuple[Array, Array, Array, Array]:
    """(day, month, year) as numpy datetime64 values, and which values are finite."""
    finite = np.isfinite(values)
    seconds = np.where(finite, values, 0).astype(np.int64)
    day = seconds.astype("datetime64[s]").astype("datetime64[D]")
    return day, day.astype("datetime64[M]"), day.astype("datetime64[Y]"), finite


def date_part(fn: str, values: Array) -> Array:
    """The UTC calendar field ``fn`` of Unix times."""
    day, month, year, finite = _datetime(values)
    whole = np.where(np.isfinite(values), values, 0)
    if fn == "minute":
        out = (np.floor_divide(whole, 60) % 60).astype(np.float64)
    elif fn == "hour":
        out = (np.floor_divide(whole, 3600) % 24).astype(np.float64)
    elif fn == "day_of_week":
        out = ((day.astype(np.int64) + 4) % 7).astype(np.float64)  # 1970-01-01 was a Thursday
    elif fn == "day_of_month":
        out = ((day - month).astype(np.int64) + 1).astype(np.float64)
    elif fn == "day_of_year":
        out = ((day - year).astype(np.int64) + 1).astype(np.float64)
    elif fn == "days_in_month":
        out = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.float64)
    elif fn == "month":
        out = ((month - year).astype(np.int64) + 1).astype(np.float64)
    else:  # year
        out = (year.astype(np.int64) + 1970).astype(np.float64)
    return np.where(finite, out, np.nan)


def dates(fn: str, vec: Vec) -> Vec:
    return Vec([without_name(lb) for lb in vec.labels], date_part(fn, vec.values), vec.present)


def _go_template(replacement: str) -> str:
    """Go's ``$1``/``${1}``/``${name}`` as Python's ``\\g<1>``."""
    escaped = replacement.replace("\\", "\\\\")
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: f"\\g<{m.group(1) or m.group(2)}>", escaped.replace("$$", "\0")
                  ).replace("\0", "$")


def label_replace(vec: Vec, dst: str, replacement: str, src: str, regex: str) -> Vec:
    pattern, template = re.compile(regex), _go_template(replacement)
    labels: list[Labels] = []
    for lb in vec.labels:
        m = pattern.fullmatch(lb.get(src, ""))
        if m is None:
            labels.append(lb)
            continue
        try:
            value = m.expand(template)
        except (IndexError, re.error):
            value = ""  # Go expands a group that does not exist to nothing
        out = {k: v for k, v in lb.items() if k != dst}
        if value:
            out[dst] = value
        labels.append(out)
    return merge(Vec(labels, vec.values, vec.present))


def label_join(vec: Vec, dst: str, sep: str, sources: list[str]) -> Vec:
    labels: list[Labels] = []
    for lb in vec.labels:
        value = sep.join(lb.get(s, "") for s in sources)
        out = {k: v for k, v in lb.items() if k != dst}
        if value:
            out[dst] = value
        labels.append(out)
    return merge(Vec(labels, vec.values, vec.present))


def sort(vec: Vec, *, descending: bool) -> Vec:
    """Ordered by the first step's value (an instant query's; a range query's matrix is in label
    order anyway), NaN last."""
    if not vec.labels:
        return vec
    first = vec.values[:, 0]
    key = np.where(np.isnan(first), np.inf, -first if descending else first)
    return vec.rows(np.argsort(key, kind="stable"))


def _bucket_quantile(q: float, bounds: Array, counts: Array) -> float:
    """Prometheus' bucketQuantile over one histogram's cumulative buckets, sorted by bound."""
    if q != q:
        return np.nan
    if q < 0:
        return -np.inf
    if q > 1:
        return np.inf
    if len(bounds) < 2 or bounds[-1] != np.inf:
        return np.nan
    counts = np.maximum.accumulate(counts)  # buckets are cumulative: a lower count is a scrape race
    total = counts[-1]
    if total == 0 or total != total:
        return np.nan
    rank = q * total
    b = int(np.searchsorted(counts, rank, side="left"))
    if b == len(bounds) - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start = 0.0 if b == 0 else float(bounds[b - 1])
    below = 0.0 if b == 0 else float(counts[b - 1])
    inside = float(counts[b]) - below
    return start + (float(bounds[b]) - start) * (rank - below) / inside


def histogram_quantile(phi: Array, vec: Vec) -> Vec:
    """Over classic histograms: series with an ``le`` label, one histogram per label set
    without ``le`` and the name."""
    rows, bounds = [], []
    for i, lb in enumerate(vec.labels):
        try:
            bounds.append(float(lb["le"].replace("+Inf", "inf")))
        except (KeyError, ValueError):
            continue
        rows.append(i)
    steps = vec.values.shape[1]
    if not rows:
        return Vec.empty(steps)
    groups = Groups([tuple(sorted((k, v) for k, v in vec.labels[i].items() if k not in ("le", NAME))) for i in rows])
    row_ix, le = np.asarray(rows), np.asarray(bounds)
    labels, values, present = [], [], []
    for key, members in zip(groups.keys, groups.members(), strict=True):
        order = members[np.argsort(le[members], kind="stable")]
        out = np.full(steps, np.nan)
        has = np.zeros(steps, dtype=bool)
        for t in range(steps):
            live = order[vec.present[row_ix[order], t]]
            if len(live):
                has[t] = True
                out[t] = _bucket_quantile(float(phi[t]), le[live], vec.values[row_ix[live], t])
        labels.append(dict(key))
        values.append(out)
        present.append(has)
    return Vec(labels, np.array(values), np.array(present))


def absent(labels: Labels, any_present: Array) -> Vec:
    """One series (of the selector's equality labels) where the argument has nothing."""
    return Vec([labels], np.ones((1, len(any_present))), ~any_present[None, :])


# -- range functions ------------------------------------------------------------------------------


def _at(a: Array, cols: Array) -> Array:
    return np.take_along_axis(a, np.maximum(cols, 0), axis=1)


def _running(win: Win, cells: Array, first: Array, last: Array) -> Array:
    """The sum of ``cells`` over the columns after ``first`` up to ``last``."""
    sums = np.zeros((cells.shape[0], cells.shape[1] + 1))
    np.cumsum(cells, axis=1, out=sums[:, 1:])
    return _at(sums, last + 1) - _at(sums, first + 1)


def _edges(fn: str, win: Win) -> tuple[Array, Array]:
    """The functions of a window's edge samples and running counts: (values, present)."""
    first, last, count = win.bounds()
    values, times = win.values, win.times
    if fn == "count_over_time":
        return count.astype(np.float64), count > 0
    if fn == "present_over_time":
        return np.ones(count.shape), count > 0
    if fn == "last_over_time":
        return _at(values, last), count > 0
    before = win.before()
    prev_value = np.take_along_axis(values, np.maximum(before, 0), axis=1)
    with np.errstate(all="ignore"):
        if fn in ("changes", "resets"):
            step = (values != prev_value) if fn == "changes" else (values < prev_value)
            hits = win.present & (before >= 0) & step
            return _running(win, hits.astype(np.float64), first, last), count > 0
        if fn in ("irate", "idelta"):
            prev = _at(before, last)
            ok = (count > 0) & (prev >= 0) & (prev >= np.maximum(win.lo, 0)[None, :])
            v, pv = _at(values, last), _at(values, prev)
            if fn == "idelta":
                return v - pv, ok
            change = np.where(v >= pv, v - pv, v)
            return change / (times[np.maximum(last, 0)] - times[np.maximum(prev, 0)]), ok
        spans = times[np.maximum(last, 0)] - times[np.maximum(first, 0)]
        ok = count > 1
        if fn == "delta":
            return (_at(values, last) - _at(values, first)) / spans * win.seconds, ok
        # rate, increase: a value lower than the one before is a counter reset (counts from 0).
        steps = np.where(win.present & (before >= 0),
                         np.where(values >= prev_value, values - prev_value, values), 0.0)
        rate = _running(win, steps, first, last) / spans
        return (rate if fn == "rate" else rate * win.seconds), ok


def _window_sums(win: Win) -> Array:
    """Each window's sum: differences of one running sum when every sample is finite (an
    infinity or NaN would spill into the windows after it), else numpy per step."""
    cells = np.where(win.present, win.values, 0.0)
    if not np.isfinite(cells).all():
        return _per_step(win, lambda v, p, t, s: np.where(p, v, 0.0).sum(axis=1))
    n, width = cells.shape
    sums = np.zeros((n, width + 1))
    np.cumsum(cells, axis=1, out=sums[:, 1:])
    lo, hi = np.clip(win.lo, 0, width), np.clip(win.hi, -1, width - 1)
    return np.where((hi >= lo)[None, :], sums[:, hi + 1] - sums[:, lo], 0.0)


def _per_step(win: Win, fn: Callable[[Array, Array, Array, int], Array]) -> Array:
    """``fn(values, present, times, step)`` over each step's window columns."""
    n, cells = win.values.shape
    out = np.full((n, len(win.lo)), np.nan)
    with np.errstate(all="ignore"):
        for t, (lo, hi) in enumerate(zip(win.lo.tolist(), win.hi.tolist(), strict=True)):
            a, b = max(lo, 0), min(hi, cells - 1) + 1
            if b > a:
                out[:, t] = fn(win.values[:, a:b], win.present[:, a:b], win.times[a:b], t)
    return out


def _regression(win: Win, anchor: Callable[[Array, int], float]) -> tuple[Array, Array]:
    """Least-squares slope and intercept (at ``anchor``'s time) of each window's samples."""
    slopes = np.full((win.values.shape[0], len(win.lo)), np.nan)

    def fit(v: Array, p: Array, t: Array, step: int) -> Array:
        w = p.astype(np.float64)
        x = (t - anchor(t, step))[None, :] * w
        y = np.where(p, v, 0.0)
        n = w.sum(axis=1)
        sx, sy, sxy, sxx = x.sum(axis=1), y.sum(axis=1), (x * y).sum(axis=1), (x * x).sum(axis=1)
        slope = (sxy - sx * sy / n) / (sxx - sx * sx / n)
        slopes[:, step] = slope
        return sy / n - slope * sx / n

    intercepts = _per_step(win, fit)
    return slopes, intercepts


def over_time(fn: str, win: Win, param: Array | None = None) -> Vec:
    _, _, count = win.bounds()
    ok = count > 0
    if fn in ("count_over_time", "present_over_time", "last_over_time", "changes", "resets", "irate", "idelta",
              "delta", "rate", "increase"):
        values, ok = _edges(fn, win)
    elif fn in ("sum_over_time", "avg_over_time"):
        sums = _window_sums(win)
        with np.errstate(all="ignore"):
            values = sums if fn == "sum_over_time" else sums / count
    elif fn in ("min_over_time", "max_over_time"):
        reduce = np.fmin if fn == "min_over_time" else np.fmax
        values = _per_step(win, lambda v, p, t, s: reduce.reduce(np.where(p, v, np.nan), axis=1))
    elif fn in ("stddev_over_time", "stdvar_over_time"):
        def var(v: Array, p: Array, t: Array, s: int) -> Array:
            n = p.sum(axis=1)
            mean = np.where(p, v, 0.0).sum(axis=1) / n
            return np.where(p, (v - mean[:, None]) ** 2, 0.0).sum(axis=1) / n
        values = _per_step(win, var)
        if fn == "stddev_over_time":
            values = np.sqrt(values)
    elif fn == "quantile_over_time":
        assert param is not None
        values = _per_step(win, lambda v, p, t, s: quantile(np.full(v.shape[0], param[s]),
                                                            np.where(p, v, np.nan).T))
    elif fn == "deriv":
        values, _ = _regression(win, lambda t, s: float(t[0]))
        ok = count > 1
    else:  # predict_linear
        assert param is not None
        slopes, intercepts = _regression(win, lambda t, s: float(win.ends[s]))
        values = slopes * param[None, :] + intercepts
        ok = count > 1
    seen = np.flatnonzero(ok.any(axis=1))  # series with nothing in any window go before their labels are copied
    keep = fn == "last_over_time"
    return Vec([win.labels[i] if keep else without_name(win.labels[i]) for i in seen.tolist()], values[seen], ok[seen])
