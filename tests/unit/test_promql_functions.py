"""PromQL's functions, subqueries and the ``@`` modifier over a real metrics history. The
expected answers are Prometheus' (its documentation's examples where it gives some, else the
definitions worked by hand), and a range query answers what instant queries at its steps do."""

from __future__ import annotations

import math
import time

import pytest

from bosun.monitoring import promql_eval
from bosun.monitoring.history import HistoryConfig, MetricsHistory
from bosun.monitoring.promql import PromQLError, parse
from bosun.monitoring.promql_eval import CALLS, EvalError, Evaluator, HistorySource
from bosun.monitoring.promql_signatures import FUNCTIONS

NOW = float(int(time.time()) // 2 * 2 - 2)  # whole and even: subquery steps fall on samples


def recorded(*series: tuple[str, dict[str, str], list[float]]) -> MetricsHistory:
    """Each series' values one a second, the last one at NOW."""
    # NOW is taken when the module is collected; in the whole suite the tests run half an
    # hour later, so the history must keep samples that old.
    h = MetricsHistory(HistoryConfig(retention=7200.0, resolution=1.0))
    for name, labels, values in series:
        for i, v in enumerate(values):
            h.add(name, labels, v, NOW - (len(values) - 1 - i))
    return h


@pytest.fixture(scope="module")
def h() -> MetricsHistory:
    return recorded(
        ("g", {"pod": "a"}, [1, 3, 2, 2, 5]),
        ("line", {"pod": "a"}, [0, 2, 4, 6, 8]),
        ("neg", {"pod": "a"}, [-2.5]), ("neg", {"pod": "b"}, [1.25]), ("neg", {"pod": "c"}, [16]),
        ("up", {"job": "api-server", "service": "a:c", "src1": "a", "src2": "b", "src3": "c"}, [1]),
        *[("req_bucket", {"le": le}, [float(c)]) for le, c in (("0.1", 1), ("0.5", 3), ("1", 6), ("+Inf", 10))],
        ("ts", {}, [1704067200 + 5 * 3600 + 7 * 60]),
    )


def answer(h: MetricsHistory, text: str, at: float = NOW) -> list[tuple[dict[str, str], float]]:
    out = Evaluator(HistorySource(h)).vector(parse(text), at)
    return [(s.labels, round(s.value, 4)) for s in out]


def value(h: MetricsHistory, text: str, at: float = NOW) -> float:
    ((_, v),) = answer(h, text, at)
    return v


def test_every_function_the_parser_accepts_is_evaluated() -> None:
    assert set(CALLS) == set(FUNCTIONS)


def test_math_functions(h: MetricsHistory) -> None:
    assert [v for _, v in answer(h, "abs(neg)")] == [2.5, 1.25, 16.0]
    assert [v for _, v in answer(h, "ceil(neg)")] == [-2.0, 2.0, 16.0]
    assert [v for _, v in answer(h, "floor(neg)")] == [-3.0, 1.0, 16.0]
    assert [v for _, v in answer(h, "round(neg)")] == [-2.0, 1.0, 16.0]  # halves round up, as Go's floor(x+0.5)
    assert [v for _, v in answer(h, "round(neg, 0.5)")] == [-2.5, 1.5, 16.0]
    assert [v for _, v in answer(h, "sgn(neg)")] == [-1.0, 1.0, 1.0]
    assert value(h, 'sqrt(neg{pod="c"})') == 4.0 and value(h, 'log2(neg{pod="c"})') == 4.0
    assert value(h, 'ln(exp(neg{pod="b"}))') == 1.25 and value(h, 'log10(neg{pod="c"} * 62.5)') == 3.0
    assert math.isnan(value(h, 'sqrt(neg{pod="a"})'))
    assert [v for _, v in answer(h, "clamp(neg, -1, 2)")] == [-1.0, 1.25, 2.0]
    assert [v for _, v in answer(h, "clamp_min(neg, 0)")] == [0.0, 1.25, 16.0]
    assert [v for _, v in answer(h, "clamp_max(neg, 0)")] == [-2.5, 0.0, 0.0]
    assert answer(h, "clamp(neg, 2, 1)") == []  # max below min: nothing, as Prometheus
    assert answer(h, "abs(neg)")[0][0] == {"pod": "a"}  # the name is dropped
    assert value(h, "-2 ^ 2") == -4.0 and value(h, "2 ^ 3 ^ 2") == 512.0
    assert value(h, 'neg{pod="b"} atan2 neg{pod="b"}') == round(math.pi / 4, 4)
    assert value(h, "pi()") == round(math.pi, 4)


def test_label_functions_as_documented(h: MetricsHistory) -> None:
    ((labels, _),) = answer(h, 'label_replace(up{job="api-server",service="a:c"}, "foo", "$1", "service", "(.*):.*")')
    assert labels["foo"] == "a" and labels["__name__"] == "up"
    ((labels, _),) = answer(h, 'label_replace(up, "foo", "${1}-$2", "service", "(.*):(.*)")')
    assert labels["foo"] == "a-c"
    ((labels, _),) = answer(h, 'label_replace(up, "service", "", "job", "api-.*")')  # empty: the label goes
    assert "service" not in labels
    ((labels, _),) = answer(h, 'label_replace(up, "foo", "$1", "service", "nomatch(.*)")')
    assert "foo" not in labels
    ((labels, _),) = answer(h, 'label_join(up{job="api-server",src1="a",src2="b",src3="c"}, "foo", ",", "src1", '
                               '"src2", "src3")')
    assert labels["foo"] == "a,b,c"
    with pytest.raises(EvalError, match="same labelset"):
        answer(h, 'label_replace(neg, "pod", "x", "pod", ".*")')


def test_histogram_quantile(h: MetricsHistory) -> None:
    # Buckets 0.1: 1, 0.5: 3, 1: 6, +Inf: 10 (cumulative). The median's rank 5 falls in the
    # (0.5, 1] bucket, 2 of its 3 observations in: 0.5 + 0.5 * 2/3.
    assert answer(h, "histogram_quantile(0.5, req_bucket)") == [({}, 0.8333)]
    assert value(h, "histogram_quantile(0.05, req_bucket)") == 0.05  # within the first bucket, from 0
    assert value(h, "histogram_quantile(0.95, req_bucket)") == 1.0  # in +Inf: the highest finite bound
    assert value(h, "histogram_quantile(1.5, req_bucket)") == math.inf
    assert math.isnan(value(h, 'histogram_quantile(0.5, req_bucket{le!="+Inf"})'))  # no +Inf bucket


def test_absent_as_documented(h: MetricsHistory) -> None:
    assert answer(h, 'absent(nonexistent{job="myjob"})') == [({"job": "myjob"}, 1.0)]
    assert answer(h, 'absent(nonexistent{job="myjob",instance=~".*"})') == [({"job": "myjob"}, 1.0)]
    assert answer(h, 'absent(sum(nonexistent{job="myjob"}))') == [({}, 1.0)]
    assert answer(h, "absent(g)") == []
    assert answer(h, 'absent_over_time(nonexistent{job="myjob"}[1h])') == [({"job": "myjob"}, 1.0)]
    assert answer(h, "absent_over_time(g[1m])") == []
    assert answer(h, "absent_over_time(g[1m] offset 1m)") == [({}, 1.0)]


def test_range_functions(h: MetricsHistory) -> None:
    # g: 1, 3, 2, 2, 5 one a second up to NOW.
    assert value(h, "changes(g[1m])") == 3.0
    assert value(h, "resets(g[1m])") == 1.0
    assert value(h, "idelta(g[1m])") == 3.0 and value(h, "irate(g[1m])") == 3.0
    assert value(h, "delta(g[1m])") == 60.0  # (5 - 1) over the 4 s sampled, scaled to the range as increase
    assert value(h, "sum_over_time(g[1m])") == 13.0 and value(h, "avg_over_time(g[1m])") == 2.6
    assert value(h, "min_over_time(g[1m])") == 1.0 and value(h, "max_over_time(g[1m])") == 5.0
    assert value(h, "count_over_time(g[1m])") == 5.0 and value(h, "present_over_time(g[1m])") == 1.0
    assert value(h, "stdvar_over_time(g[1m])") == 1.84 and value(h, "stddev_over_time(g[1m])") == 1.3565
    assert value(h, "quantile_over_time(0.5, g[1m])") == 2.0
    assert value(h, "quantile_over_time(0.75, g[1m])") == 3.0
    assert answer(h, "last_over_time(g[1m])") == [({"__name__": "g", "pod": "a"}, 5.0)]  # keeps the name
    # A range reads one resolution further back (a sample is stored at the start of its slot):
    # [2s] holds 3, 2, 2, 5.
    assert value(h, "changes(g[2s])") == 2.0
    assert value(h, "deriv(line[1m])") == 2.0
    assert value(h, "predict_linear(line[1m], 10)") == 28.0  # 8 now, +2 a second
    assert answer(h, "rate(g[1m] offset 1m)") == []


def test_subqueries(h: MetricsHistory) -> None:
    # The inner steps are the multiples of the step in (t - range, t]: g at NOW-4 .. NOW.
    assert value(h, "sum_over_time(g[5s:1s])") == 13.0
    assert value(h, "count_over_time(g[10s:2s])") == 3.0  # NOW-4, -2, 0: before NOW-4 there was no g
    assert value(h, "sum_over_time(g[2s:1s] offset 2s)") == 5.0  # g at NOW-3 and NOW-2
    assert value(h, "max_over_time(deriv(line[2s])[4s:1s])") == 2.0
    assert value(h, "min_over_time(g[5s:])") == 1.0  # the history's resolution as the step
    assert value(h, "max_over_time(rate(line[1m])[3s:1s])") == 2.0


def test_at_modifier(h: MetricsHistory) -> None:
    assert value(h, f"g @ {NOW - 3}") == 3.0
    assert value(h, f"g @ {NOW - 3} offset 1s") == 1.0 and value(h, f"g offset 1s @ {NOW - 3}") == 1.0
    assert value(h, f"max_over_time(g[2s] @ {NOW - 1})") == 3.0
    assert value(h, "g @ start()", at=NOW - 1) == 2.0  # an instant query's start and end are its time
    ev = Evaluator(HistorySource(h))
    for text, want in (("g @ start()", 1.0), ("g @ end()", 5.0), ("sum_over_time(g[2s:1s] @ end())", 7.0)):
        ((_, points),) = ev.evaluate_range(parse(text), NOW - 4, NOW, 1)
        assert [v for _, v in points] == [want] * 5, text


def test_count_values_and_number_literals(h: MetricsHistory) -> None:
    assert answer(h, 'count_values("value", neg)') == [({"value": "-2.5"}, 1.0), ({"value": "1.25"}, 1.0),
                                                       ({"value": "16"}, 1.0)]
    assert answer(h, 'count_values without (pod) ("v", neg > 0 or neg * 0 + 16)') == [
        ({"v": "1.25"}, 1.0), ({"v": "16"}, 2.0)]
    assert answer(h, "neg > Inf") == [] and len(answer(h, "neg > -inf")) == 3
    assert math.isnan(Evaluator(HistorySource(h)).evaluate(parse("NaN"), NOW))
    # Infinite samples in a window: the sum is infinite, not spilled into other windows.
    assert value(h, 'sum_over_time((neg{pod="c"} / 0)[3s:1s])') == math.inf
    assert value(h, "sum_over_time((g / (g - 2))[5s:1s])") == math.inf  # g was 2 twice


def test_time_and_conversions(h: MetricsHistory) -> None:
    assert Evaluator(HistorySource(h)).evaluate(parse("time()"), NOW) == NOW
    assert answer(h, "timestamp(g)") == [({"pod": "a"}, NOW)]
    assert answer(h, "timestamp(g offset 2s)") == [({"pod": "a"}, NOW - 2)]
    assert answer(h, "vector(7)") == [({}, 7.0)]
    assert value(h, "scalar(g) * 2") == 10.0
    assert math.isnan(Evaluator(HistorySource(h)).evaluate(parse("scalar(neg)"), NOW))  # not one series: NaN
    assert [lb["pod"] for lb, _ in answer(h, "sort_desc(neg)")] == ["c", "b", "a"]
    assert [lb["pod"] for lb, _ in answer(h, "sort(neg)")] == ["a", "b", "c"]


@pytest.mark.parametrize(("fn", "want"), [
    ("minute", 7.0), ("hour", 5.0), ("day_of_week", 1.0), ("day_of_month", 1.0), ("day_of_year", 1.0),
    ("month", 1.0), ("year", 2024.0), ("days_in_month", 31.0),
])
def test_date_functions(h: MetricsHistory, fn: str, want: float) -> None:
    # ts holds 2024-01-01T05:07:00Z, a Monday.
    assert value(h, f"{fn}(ts)") == want
    assert value(h, "days_in_month(vector(1706745600))") == 29.0  # February 2024
    assert value(h, "day_of_year(vector(1709251200))") == 61.0  # 1 March 2024
    assert value(h, f"{fn}()") == value(h, f"{fn}(vector(time()))")


@pytest.mark.parametrize("text", [
    "changes(g[3s])", "resets(g[2s])", "irate(g[3s])", "deriv(line[3s])", "predict_linear(line[3s], 4)",
    "sum_over_time(g[3s:1s])", "max_over_time(g[4s:2s] offset 1s)", "sum_over_time(g[3s:1s] offset -1s)",
    "absent(g)", "absent_over_time(g[2s])", "timestamp(g)", "scalar(g) + line", "clamp(g, 2, 3)",
    'label_replace(g, "x", "$1", "pod", "(.*)")', "quantile_over_time(0.3, g[3s])", "time() - timestamp(g)",
    'count_values("v", g)', "sum_over_time((g / (g - 2))[3s:1s])", "avg_over_time(g[2s:1s])",
])
def test_range_queries_answer_each_step_as_an_instant_query(h: MetricsHistory, text: str) -> None:
    ev = Evaluator(HistorySource(h))
    expr = parse(text)
    start, end, step = NOW - 9, NOW + 4, 1.0
    want: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for i in range(14):
        t = start + i * step
        for s in ev.vector(expr, t):
            want.setdefault(tuple(sorted(s.labels.items())), []).append((t, s.value))
    got = {tuple(sorted(labels.items())): points for labels, points in ev.evaluate_range(expr, start, end, step)}
    assert got == want and got, text


@pytest.mark.parametrize(("text", "where", "words"), [
    ("rate(x[5m:1m:])", "1:13", "unexpected ':'"),
    ("x[5m:1m]", "1:1", "a range vector is only the argument"),
    ("(1)[5m:]", "1:1", "a subquery needs an instant vector expression, not a scalar"),
    ("x @ foo()", "1:5", "@ takes a Unix time, start() or end()"),
    ("x offset 1m\n  offset 2m", "2:3", "offset and @ are each given at most once"),
    ("sum(x) @ 100", "1:8", "unexpected '@'"),
    ("round()", "1:1", "round() takes 1 to 2 arguments, not 0"),
    ("clamp(x, 1)", "1:1", "clamp() takes 3 arguments, not 2"),
    ("label_replace(x, \"1a\", \"\", \"b\", \"\")", "1:1", "invalid label name '1a'"),
    ("label_replace(x, \"a\", \"\", \"b\", \"(\")", "1:1", "invalid regular expression"),
    ("histogram_quantile(x, y)", "1:1", "needs a scalar as its first argument, not an instant vector"),
    ("deriv(x)", "1:1", "deriv() needs a range vector such as metric[5m] as its first argument"),
    ("x + \"a\"", "1:3", "not a string"),
    ("\"a\"", "1:1", "a string is only the argument"),
    ("count_values(1, x)", "1:1", "count_values()'s first argument is the label"),
    ("count_values(\"1a\", x)", "1:1", "invalid label name '1a'"),
    ("Inf offset 5m", "1:1", "Inf is a number: a range, offset and @ are for selectors"),
])
def test_new_syntax_errors_name_line_and_column(text: str, where: str, words: str) -> None:
    with pytest.raises(PromQLError) as err:
        parse(text)
    assert str(err.value).startswith(where + ": ") and words in str(err.value), str(err.value)


def test_matches_are_unique_per_step_not_per_range() -> None:
    """Two series with the same match labels at different times (a pod replaced) pair up in a
    range query; Prometheus' error comes only where both have a sample at one step."""
    # NOW is taken when the module is collected; in the whole suite the tests run half an
    # hour later, so the history must keep samples that old.
    h = MetricsHistory(HistoryConfig(retention=7200.0, resolution=1.0))
    for i in range(30):
        h.add("limit", {"app": "web"}, 10.0, NOW - 29 + i)
        if i < 10:
            h.add("usage", {"app": "web", "pod": "old"}, 1.0, NOW - 29 + i)
        if i > 15:
            h.add("usage", {"app": "web", "pod": "new"}, 2.0, NOW - 29 + i)
    ev = Evaluator(HistorySource(h))
    ((labels, points),) = ev.evaluate_range(parse("limit - on(app) usage"), NOW - 29, NOW, 1)
    assert labels == {"app": "web"}
    assert [v for _, v in points] == [9.0] * 13 + [8.0] * 14  # old until NOW-20 plus the lookback, new from NOW-13
    h.add("usage", {"app": "web", "pod": "old"}, 1.0, NOW)
    with pytest.raises(EvalError, match="found duplicate series for the match group"):
        ev.vector(parse("limit - on(app) usage"), NOW)
    with pytest.raises(EvalError, match="multiple matches for labels"):
        ev.vector(parse("usage - on(app) limit"), NOW)


@pytest.mark.parametrize("text", ["g @ start()", "g @ end()", "sum_over_time(g[3s:1s])", "rate(line[3s]) * on(pod) g",
                                  "topk(1, neg)", "time()"])
def test_a_range_in_chunks_answers_as_in_one(h: MetricsHistory, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ev, expr = Evaluator(HistorySource(h)), parse(text)
    whole = ev.evaluate_range(expr, NOW - 3, NOW + 2, 1)
    monkeypatch.setattr(promql_eval, "CHUNK_STEPS", 4)  # two chunks: 4 steps and 2
    assert ev.evaluate_range(expr, NOW - 3, NOW + 2, 1) == whole and whole
