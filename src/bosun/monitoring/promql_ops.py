"""PromQL's operators and aggregations over :class:`~.promql_vectors.Vec` values, every step
at once: the pairing of two vectors' series (by their labels, which do not change between
steps) is worked out once, then the arithmetic is one numpy operation over the arrays.

The semantics are Prometheus': arithmetic drops the metric name, comparisons filter and keep
it (with ``bool`` they answer 0/1 and drop it), two vectors match one-to-one on all labels
but the name unless ``on``/``ignoring`` say otherwise, many-to-one or one-to-many with
``group_left``/``group_right``, with Prometheus' errors when a match is not unique at a step.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np

from bosun.monitoring.promql import COMPARISONS, ONE_TO_MANY, ONE_TO_ONE, Aggregate, Binary, VectorMatching
from bosun.monitoring.promql_vectors import NAME, EvalError, Groups, Labels, Vec, merge, signature, without_name

Key = tuple[tuple[str, str], ...]
K = TypeVar("K", bound=Hashable)
Op = Callable[[np.ndarray, np.ndarray], np.ndarray]

ARITHMETIC: dict[str, Op] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "%": np.fmod, "^": np.power,
    "atan2": np.arctan2}
COMPARE: dict[str, Op] = {
    "==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less, ">=": np.greater_equal,
    "<=": np.less_equal}


def apply(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (COMPARE.get(op) or ARITHMETIC[op])(a, b)


def match_key(labels: Labels, m: VectorMatching) -> Key:
    """What two samples must share to pair up (an empty label is an absent one)."""
    if m.on:
        return tuple((k, labels[k]) for k in sorted(m.labels) if labels.get(k))
    # A copy less a few labels, sorted: C loops, no Python step per label (this runs per series).
    rest = labels.copy()
    rest.pop(NAME, None)
    for k in m.labels:
        rest.pop(k, None)
    return tuple(sorted(rest.items()))


def result_labels(many: Labels, one: Labels, drop_name: bool, m: VectorMatching) -> Labels:
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


def _show(key: Key) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"


def _overlap(keys: list[K], present: np.ndarray) -> K | None:
    """The first key whose rows have samples at the same step, if any."""
    if len(set(keys)) == len(keys):
        return None
    rows: dict[K, list[int]] = {}
    for i, k in enumerate(keys):
        rows.setdefault(k, []).append(i)
    for k, idx in rows.items():
        if len(idx) > 1 and (present[idx].sum(axis=0) > 1).any():
            return k
    return None


def vector_binop(b: Binary, left: Vec, right: Vec) -> Vec:
    """Two vectors, matched as ``b.matching`` says; the errors are Prometheus'. The checks and
    the merging of series with equal labels are skipped when no key or labelset repeats (the
    usual case: one Python pass over the series, the rest numpy)."""
    m = b.matching
    many, one = (right, left) if m.card == ONE_TO_MANY else (left, right)
    side = "left" if m.card == ONE_TO_MANY else "right"
    by_key: dict[Key, list[int]] = {}
    for j, lb in enumerate(one.labels):
        by_key.setdefault(match_key(lb, m), []).append(j)
    for key, js in by_key.items():
        if len(js) > 1 and (one.present[js].sum(axis=0) > 1).any():
            raise EvalError(f"found duplicate series for the match group {_show(key)} on the {side} hand-side "
                            "of the operation; many-to-many matching not allowed: matching labels must be unique "
                            "on one side")
    pairs: list[tuple[int, int]] = []
    keys: list[Key] = []
    for i, lb in enumerate(many.labels):
        key = match_key(lb, m)
        for j in by_key.get(key, ()):
            pairs.append((i, j))
            keys.append(key)
    steps = left.values.shape[1]
    if not pairs:
        return Vec.empty(steps)
    mi = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs))
    oi = np.fromiter((j for _, j in pairs), dtype=np.int64, count=len(pairs))
    present = many.present[mi] & one.present[oi]
    lv, rv = (one.values[oi], many.values[mi]) if m.card == ONE_TO_MANY else (many.values[mi], one.values[oi])
    compare = b.op in COMPARISONS
    out = apply(b.op, lv, rv)
    if compare and b.bool_:
        values = out.astype(np.float64)
    elif compare:
        present &= out.astype(bool)
        values = lv
    else:
        values = out
    drop_name = not compare or b.bool_
    labels = [result_labels(many.labels[i], one.labels[j], drop_name, m) for i, j in pairs]
    if m.card == ONE_TO_ONE:
        if len(set(keys)) == len(keys):
            return Vec(labels, values, present)  # one pair per key: labels cannot repeat
        clash = _overlap(keys, present)
        if clash is not None:
            raise EvalError(f"multiple matches for labels {_show(clash)}: many-to-one matching must be "
                            "explicit (group_left/group_right)")
        return merge(Vec(labels, values, present))
    sigs = [signature(lb) for lb in labels]
    if len(set(sigs)) == len(sigs):
        return Vec(labels, values, present)
    made = _overlap(list(zip(keys, sigs, strict=True)), present)
    if made is not None:
        raise EvalError(f"multiple matches for labels {_show(made[1])}: grouping labels must ensure unique matches")
    return merge(Vec(labels, values, present))


def scalar_binop(b: Binary, vec: Vec, scalar: np.ndarray, *, scalar_right: bool) -> Vec:
    s = scalar[None, :]
    a, c = (vec.values, s) if scalar_right else (s, vec.values)
    out = apply(b.op, a, c)
    if b.op in COMPARISONS:
        if b.bool_:
            return merge(Vec([without_name(lb) for lb in vec.labels], out.astype(np.float64), vec.present.copy()))
        # The vector's value is kept, on whichever side it was.
        return Vec(vec.labels, vec.values, vec.present & out.astype(bool))
    return merge(Vec([without_name(lb) for lb in vec.labels], out, vec.present.copy()))


def set_op(op: str, left: Vec, right: Vec, m: VectorMatching) -> Vec:
    """and / or / unless, at each step: which keys the other side has a sample for then."""
    steps = left.values.shape[1]

    def having(v: Vec) -> tuple[dict[Key, int], np.ndarray]:
        keys = [match_key(lb, m) for lb in v.labels]
        if not keys:
            return {}, np.zeros((0, steps), dtype=bool)
        groups = Groups(keys)
        return {k: g for g, k in enumerate(groups.keys)}, groups.reduce(np.logical_or, v.present)

    def mask(v: Vec, index: dict[Key, int], has: np.ndarray) -> np.ndarray:
        out = np.zeros_like(v.present)
        for i, lb in enumerate(v.labels):
            g = index.get(match_key(lb, m))
            if g is not None:
                out[i] = has[g]
        return out

    if op in ("and", "unless"):
        index, has = having(right)
        hit = mask(left, index, has)
        return Vec(left.labels, left.values, left.present & (hit if op == "and" else ~hit))
    index, has = having(left)
    extra = right.present & ~mask(right, index, has)
    return merge(Vec(left.labels + right.labels, np.concatenate([left.values, right.values]),
                     np.concatenate([left.present, extra])))


def _group_keys(agg: Aggregate, labels: list[Labels]) -> list[Key]:
    if agg.without:  # the same labels as ignoring (labels) matches on
        ignoring = VectorMatching(False, agg.labels)
        return [match_key(lb, ignoring) for lb in labels]
    by = sorted(set(agg.labels))
    if len(by) == 1:  # the usual "by (namespace)"
        (name,) = by
        return [((name, v),) if (v := lb.get(name)) else () for lb in labels]
    return [tuple([(k, lb[k]) for k in by if lb.get(k)]) for lb in labels]


def aggregate(agg: Aggregate, vec: Vec, param: np.ndarray | str | None) -> Vec:
    steps = vec.values.shape[1]
    if not vec.labels:
        return Vec.empty(steps)
    groups = Groups(_group_keys(agg, vec.labels))
    if isinstance(param, str):
        return _count_values(groups, vec, param)
    if agg.op in ("topk", "bottomk"):
        assert param is not None
        return _topk(agg.op == "topk", groups, vec, param)
    present = vec.present
    count = groups.reduce(np.add, present.astype(np.int64))
    has = count > 0
    with np.errstate(all="ignore"):
        total = groups.reduce(np.add, np.where(present, vec.values, 0.0))
        if agg.op == "sum":
            out = total
        elif agg.op == "avg":
            out = total / count
        elif agg.op == "count":
            out = count.astype(np.float64)
        elif agg.op == "group":
            out = np.ones_like(total)
        elif agg.op in ("max", "min"):
            # NaN only when every sample is NaN, as Prometheus' max/min.
            fn = np.fmax if agg.op == "max" else np.fmin
            out = groups.reduce(fn, np.where(present, vec.values, np.nan))
        elif agg.op in ("stddev", "stdvar"):
            mean = total / count
            dev = np.where(present, (vec.values - mean[groups.gid]) ** 2, 0.0)
            out = groups.reduce(np.add, dev) / count
            if agg.op == "stddev":
                out = np.sqrt(out)
        else:  # quantile
            assert param is not None
            out = np.stack([quantile(param, np.where(present[rows], vec.values[rows], np.nan))
                            for rows in groups.members()])
    return Vec([dict(k) for k in groups.keys], out, has)


def quantile(phi: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Prometheus' quantile of each column's non-NaN cells (linear interpolation between the
    closest ranks; below 0 it is -Inf, above 1 +Inf), ``phi`` per column."""
    n = np.sum(~np.isnan(cells), axis=0)
    ordered = np.sort(cells, axis=0)  # NaNs last
    rank = np.clip(phi, 0.0, 1.0) * np.maximum(n - 1, 0)
    lo = np.floor(rank).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    cols = np.arange(cells.shape[1])
    weight = rank - lo
    out = ordered[lo, cols] * (1 - weight) + ordered[hi, cols] * weight
    out = np.where(phi < 0, -np.inf, np.where(phi > 1, np.inf, out))
    return np.where(np.isnan(phi) | (n == 0), np.nan, out)


def _topk(top: bool, groups: Groups, vec: Vec, k: np.ndarray) -> Vec:
    """The samples themselves, labels and all: topk picks series at each step, it does not sum."""
    keep = np.zeros_like(vec.present)
    limit = np.where(np.isnan(k), 0, k).astype(np.int64)[None, :]
    for rows in groups.members():
        v, p = vec.values[rows], vec.present[rows]
        # Absent samples sort last, NaN values just before them (Prometheus ranks NaN lowest).
        order = np.where(np.isnan(v), np.finfo(np.float64).max, -v if top else v)
        order = np.where(p, order, np.inf)
        rank = np.argsort(np.argsort(order, axis=0, kind="stable"), axis=0, kind="stable")
        keep[rows] = p & (rank < limit)
    return Vec(vec.labels, vec.values, keep)


def _format(v: float) -> str:
    """A value as Go's FormatFloat(v, 'f', -1, 64) writes it (count_values' label)."""
    if v != v:
        return "NaN"
    if v in (np.inf, -np.inf):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_positional(v, trim="-")


def _count_values(groups: Groups, vec: Vec, label: str) -> Vec:
    """One series per group and distinct value, ``label`` holding the value, counting the
    samples that have it at each step."""
    labels, values, present = [], [], []
    for key, rows in zip(groups.keys, groups.members(), strict=True):
        v, p = vec.values[rows], vec.present[rows]
        for u in np.unique(v[p]).tolist():
            hit = p & ((v == u) | (np.isnan(v) & (u != u)))
            counts = hit.sum(axis=0)
            labels.append({**dict(key), label: _format(u)})  # type: ignore[arg-type]
            values.append(counts.astype(np.float64))
            present.append(counts > 0)
    if not labels:
        return Vec.empty(vec.values.shape[1])
    return merge(Vec(labels, np.array(values), np.array(present)))
