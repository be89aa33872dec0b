"""The PromQL subset's vector matching (``on``/``ignoring``, ``group_left``/``group_right``),
``bool``, ``offset``, the parameterised aggregations and range evaluation, over a real metrics
history holding recorded series. The expected answers are Prometheus' (its documentation's
examples for vector matching)."""

from __future__ import annotations

import re
import time

import pytest

from bosun.monitoring.history import HistoryConfig, MetricsHistory
from bosun.monitoring.promql import PromQLError, parse
from bosun.monitoring.promql_eval import EvalError, Evaluator, HistorySource

ERRORS = "method_code:http_errors:rate5m"
REQUESTS = "method:http_requests:rate5m"


def recorded(*series: tuple[str, dict[str, str], list[float]], now: float) -> MetricsHistory:
    """A history holding each series' values, one a second, the last one at ``now``."""
    h = MetricsHistory(HistoryConfig(retention=600.0, resolution=1.0))
    for name, labels, values in series:
        for i, v in enumerate(values):
            h.add(name, labels, v, now - (len(values) - 1 - i))
    return h


def answer(h: MetricsHistory, text: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
    out = Evaluator(HistorySource(h)).vector(parse(text), at)
    return sorted(((s.labels, round(s.value, 4)) for s in out), key=lambda x: sorted(x[0].items()))


@pytest.fixture
def http() -> MetricsHistory:
    # Prometheus' documentation's example of vector matching.
    return recorded(
        (ERRORS, {"method": "get", "code": "500"}, [24]), (ERRORS, {"method": "get", "code": "404"}, [30]),
        (ERRORS, {"method": "put", "code": "501"}, [3]), (ERRORS, {"method": "post", "code": "500"}, [6]),
        (ERRORS, {"method": "post", "code": "404"}, [21]),
        (REQUESTS, {"method": "get"}, [600]), (REQUESTS, {"method": "del"}, [34]),
        (REQUESTS, {"method": "post"}, [120]),
        now=time.time())


def test_one_to_one_on_and_ignoring(http: MetricsHistory) -> None:
    want = [({"method": "get"}, 0.04), ({"method": "post"}, 0.05)]
    assert answer(http, f'{ERRORS}{{code="500"}} / ignoring(code) {REQUESTS}') == want
    assert answer(http, f'{ERRORS}{{code="500"}} / on(method) {REQUESTS}') == want
    # Without the modifier the label sets differ (code): nothing matches.
    assert answer(http, f'{ERRORS}{{code="500"}} / {REQUESTS}') == []
    # on() keeps only its labels, also for a filtering comparison (as Prometheus does).
    assert answer(http, f'{ERRORS}{{code="500"}} > on(method) {REQUESTS} / 22') == [({"method": "post"}, 6.0)]
    # ignoring() drops its labels from the result and keeps the rest, name included for a filter.
    assert answer(http, f'{ERRORS}{{code="404"}} < ignoring(code) {REQUESTS}') == [
        ({"__name__": ERRORS, "method": "get"}, 30.0), ({"__name__": ERRORS, "method": "post"}, 21.0)]


def test_group_left_and_group_right(http: MetricsHistory) -> None:
    assert answer(http, f"{ERRORS} / ignoring(code) group_left {REQUESTS}") == [
        ({"code": "404", "method": "get"}, 0.05), ({"code": "404", "method": "post"}, 0.175),
        ({"code": "500", "method": "get"}, 0.04), ({"code": "500", "method": "post"}, 0.05)]
    # The other way round: the "many" side on the right, its labels kept, the left value first.
    assert answer(http, f"{REQUESTS} / on(method) group_right {ERRORS}") == [
        ({"code": "404", "method": "get"}, 20.0), ({"code": "404", "method": "post"}, 5.7143),
        ({"code": "500", "method": "get"}, 25.0), ({"code": "500", "method": "post"}, 20.0)]
    # Without group_left, many-to-one is an error that names the match group.
    with pytest.raises(EvalError, match=re.escape('multiple matches for labels {method="get"}: many-to-one '
                                                  "matching must be explicit")):
        answer(http, f"{ERRORS} / on(method) {REQUESTS}")
    # Duplicates on the "one" side are many-to-many: refused.
    with pytest.raises(EvalError, match=re.escape('duplicate series for the match group {method="get"} on the left')):
        answer(http, f"{ERRORS} / on(method) group_right {REQUESTS}")


def test_group_left_copies_labels_from_the_one_side() -> None:
    now = time.time()
    h = recorded(("pod_cpu", {"pod": "a", "node": "n1"}, [0.5]), ("pod_cpu", {"pod": "b", "node": "n2"}, [0.25]),
                 ("pod_cpu", {"pod": "c", "node": "n3"}, [1.0]),
                 ("node_info", {"node": "n1", "kernel": "6.1", "zone": "x"}, [1]),
                 ("node_info", {"node": "n2", "kernel": "6.6", "zone": "y"}, [1]), now=now)
    # The "info metric" join: each pod's value with its node's kernel label; n3 has no info.
    assert answer(h, "pod_cpu * on(node) group_left(kernel) node_info") == [
        ({"kernel": "6.1", "node": "n1", "pod": "a"}, 0.5), ({"kernel": "6.6", "node": "n2", "pod": "b"}, 0.25)]
    # As a filter: the pod's series, name and all, plus the copied label.
    assert answer(h, "pod_cpu > on(node) group_left(zone) (node_info * 0.4)") == [
        ({"__name__": "pod_cpu", "node": "n1", "pod": "a", "zone": "x"}, 0.5)]


def test_bool_modulo_and_set_operators_with_matching(http: MetricsHistory) -> None:
    assert answer(http, f'{REQUESTS} > bool 100') == [
        ({"method": "del"}, 0.0), ({"method": "get"}, 1.0), ({"method": "post"}, 1.0)]
    assert answer(http, f'{ERRORS}{{code="500"}} >= bool ignoring(code) {REQUESTS} / 20') == [
        ({"method": "get"}, 0.0), ({"method": "post"}, 1.0)]
    assert answer(http, f"{REQUESTS} % 7") == [({"method": "del"}, 6.0), ({"method": "get"}, 5.0),
                                               ({"method": "post"}, 1.0)]
    assert [lb["method"] for lb, _ in answer(http, f"{REQUESTS} and on(method) {ERRORS}")] == ["get", "post"]
    assert [lb["method"] for lb, _ in answer(http, f"{REQUESTS} unless ignoring(code) {ERRORS}")] == ["del"]
    assert [(lb.get("method"), lb.get("code")) for lb, _ in answer(http, f"{REQUESTS} or on(method) {ERRORS}")] == [
        ("del", None), ("get", None), ("post", None), ("put", "501")]


def test_offset_moves_selectors_and_ranges_back() -> None:
    now = time.time()
    h = recorded(("counter", {"pod": "a"}, [float(i) for i in range(0, 200, 2)]),  # +2 a second, now 198
                 ("gauge", {"pod": "a"}, [float(i) for i in range(100)]), now=now)  # 0..99, now 99
    assert answer(h, "gauge", now) == [({"__name__": "gauge", "pod": "a"}, 99.0)]
    assert answer(h, "gauge offset 30s", now) == [({"__name__": "gauge", "pod": "a"}, 69.0)]
    assert answer(h, "gauge - gauge offset 1m", now) == [({"pod": "a"}, 60.0)]
    assert answer(h, "max_over_time(gauge[10s] offset 50s)", now) == [({"pod": "a"}, 49.0)]
    assert answer(h, "rate(counter[30s] offset 20s)", now) == [({"pod": "a"}, 2.0)]
    # Before the history began there is nothing.
    assert answer(h, "gauge offset 5m", now) == []


def test_aggregations_with_parameters_and_grouping() -> None:
    now = time.time()
    series = [("mem", {"ns": ns, "pod": f"{ns}-{i}"}, [float(v)]) for ns, values in (("a", (1, 5, 3, 9)),
                                                                                     ("b", (4, 4)))
              for i, v in enumerate(values)]
    h = recorded(*series, now=now)
    assert [(lb["pod"], v) for lb, v in answer(h, "topk(2, mem)")] == [("a-1", 5.0), ("a-3", 9.0)]
    assert [(lb["pod"], v) for lb, v in answer(h, "bottomk by (ns) (1, mem)")] == [("a-0", 1.0), ("b-0", 4.0)]
    assert answer(h, "quantile by (ns) (0.5, mem)") == [({"ns": "a"}, 4.0), ({"ns": "b"}, 4.0)]
    assert answer(h, "quantile(0.9, mem) without (pod, ns)") == [({}, 7.0)]
    assert answer(h, "stddev by (ns) (mem)") == [({"ns": "a"}, 2.958), ({"ns": "b"}, 0.0)]
    assert answer(h, "stdvar without (pod) (mem)") == [({"ns": "a"}, 8.75), ({"ns": "b"}, 0.0)]
    assert answer(h, "group by (ns) (mem)") == [({"ns": "a"}, 1.0), ({"ns": "b"}, 1.0)]
    assert answer(h, "count(mem) by (ns) > 3") == [({"ns": "a"}, 4.0)]


def test_range_evaluation_is_an_instant_evaluation_at_every_step() -> None:
    now = float(int(time.time()))
    h = recorded(("gauge", {"pod": "a"}, [float(i) for i in range(60)]),
                 ("gauge", {"pod": "b"}, [float(i) for i in range(20)]), now=now)  # b: only the last 20 s
    ev = Evaluator(HistorySource(h))
    matrix = ev.evaluate_range(parse("gauge * 2"), now - 50, now, 10)
    assert [(labels, [(t - now, v) for t, v in points]) for labels, points in matrix] == [
        ({"pod": "a"}, [(-50.0, 18.0), (-40.0, 38.0), (-30.0, 58.0), (-20.0, 78.0), (-10.0, 98.0), (0.0, 118.0)]),
        # b appears when it started (plus the lookback of three resolutions it stays visible after).
        ({"pod": "b"}, [(-10.0, 18.0), (0.0, 38.0)])]
    ((_, points),) = ev.evaluate_range(parse("sum(gauge offset 10s)"), now - 20, now, 20)
    assert points == [(now - 20, 29.0), (now, 49.0 + 9.0)]


@pytest.mark.parametrize(("text", "where", "words"), [
    ("a * on(x) group_left(x) b", "1:11", "must not occur in on() and group_left() at once"),
    ("a and on(x) group_left b", "1:13", "not allowed with operator and"),
    ("a + bool b", "1:5", "bool is only for comparison operators"),
    ("1 + on(a) b", "1:5", "only between two vectors"),
    ("a offset", "1:9", "unexpected end of expression"),
    ("sum(a) offset 5m", "1:8", "unexpected 'offset'"),
    ("topk(a)", "1:1", "needs a parameter first"),
    ("sum(2, a)", "1:1", "takes no parameter"),
    ("topk(b, a)", "1:1", "first argument is a number"),
    ("a * on(x) group_left(y b", "1:24", "unexpected 'b'"),
])
def test_matching_and_offset_errors_name_line_and_column(text: str, where: str, words: str) -> None:
    with pytest.raises(PromQLError) as err:
        parse(text)
    assert str(err.value).startswith(where + ": ") and words in str(err.value), str(err.value)


@pytest.mark.parametrize("text", ["gauge", "gauge offset 7s", "sum by (pod) (gauge offset -3s)", "gauge > 20",
                                  "gauge * on(pod) group_left other", "rate(gauge[10s]) + gauge offset 2s"])
def test_range_reads_ahead_but_answers_as_each_step_would(text: str) -> None:
    """A range query reads each selector once for the whole range (numpy): its answer is the
    instant evaluation at every step, gaps, lookback, offsets and the range's edges included."""
    now = float(int(time.time()))
    values = [float(i) if i % 5 not in (2, 3, 4) or i > 50 else float("nan") for i in range(80)]
    h = MetricsHistory(HistoryConfig(retention=120.0, resolution=1.0))
    for i, v in enumerate(values):
        if v == v:
            h.add("gauge", {"pod": "a"}, v, now - 79 + i)
        if i > 40:
            h.add("gauge", {"pod": "b"}, 2 * v if v == v else 1.0, now - 79 + i)
    h.add("other", {"pod": "a", "zone": "z"}, 3.0, now)
    h.add("other", {"pod": "a", "zone": "z"}, 3.0, now - 60)
    ev = Evaluator(HistorySource(h))
    start, end, step = now - 100, now + 5, 3.0
    expr = parse(text)
    want: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    t = start
    while t <= end:
        for s in ev.vector(expr, t):
            want.setdefault(tuple(sorted(s.labels.items())), []).append((t, s.value))
        t += step
    got = {tuple(sorted(labels.items())): points for labels, points in ev.evaluate_range(expr, start, end, step)}
    assert got == want and got
