"""The PromQL subset: what parses, what is refused with its line and column, and what it
evaluates to over a real metrics history."""

from __future__ import annotations

import time

import pytest

from bosun.agent.httpcheck import check_url
from bosun.alerting.rulefile import RuleFileError, parse_rule_file
from bosun.alerting.userrules import UserRules
from bosun.monitoring.history import HistoryConfig, MetricsHistory
from bosun.monitoring.promql import PromQLError, parse
from bosun.monitoring.promql_eval import Evaluator, HistorySource, Sample


@pytest.mark.parametrize(("text", "where", "words"), [
    ("rate(x[5m]", "1:11", "unexpected end of expression; expected ')'"),
    ("rate(x)", "1:1", "rate() needs a range vector"),
    ("frob(x[5m])", "1:1", "unknown function 'frob'"),
    ("x >", "1:4", "unexpected end of expression"),
    ('x{a="b"', "1:8", "expected ',' or '}'"),
    ('x{a=~"("}', "1:6", "invalid regular expression"),
    ("sum by (a) (x[5m])", "1:1", "needs an instant vector"),
    ("1 and x", "1:3", "works between two vectors"),
    ("x $ 3", "1:3", "unexpected character '$'"),
    ("x[5m]", "1:1", "a range vector is only the argument"),
    ("rate(x[5m:1m:])", "1:13", "unexpected ':'"),
    ("abs(x[5m])", "1:1", "abs() needs an instant vector as its first argument, not a range vector"),
    ("x >\n  y )", "2:5", "unexpected ')'"),
])
def test_errors_name_line_and_column(text: str, where: str, words: str) -> None:
    with pytest.raises(PromQLError) as err:
        parse(text)
    assert str(err.value).startswith(where + ": ") and words in str(err.value)


def history_with(*samples: tuple[str, dict[str, str], list[float]]) -> MetricsHistory:
    """A history holding each series' values, one a second up to now."""
    h = MetricsHistory(HistoryConfig(retention=600.0, resolution=1.0))
    now = time.time()
    for name, labels, values in samples:
        for i, v in enumerate(values):
            h.add(name, labels, v, now - (len(values) - 1 - i))
    return h


def run(h: MetricsHistory, text: str) -> list[tuple[dict[str, str], float]]:
    out = Evaluator(HistorySource(h)).vector(parse(text))
    found = [(s.labels, s.value) for s in out if isinstance(s, Sample)]
    return sorted(found, key=lambda x: (x[0].get("pod", ""), sorted(x[0].items())))


def test_selectors_functions_aggregations_and_operators() -> None:
    a = {"namespace": "shop", "pod": "a", "container": "web"}
    b = {"namespace": "shop", "pod": "b", "container": "web"}
    c = {"namespace": "dev", "pod": "c", "container": "job"}
    h = history_with(("restarts", a, [0, 1, 2, 0, 1]),  # a reset: increase 1+1+0(reset to 0)+1 = 3
                     ("restarts", b, [4, 4, 4, 4, 4]),
                     ("restarts", c, [1, 2, 3, 4, 5]),
                     ("used", {"pvc": "data"}, [90.0]), ("capacity", {"pvc": "data"}, [100.0]),
                     ("used", {"pvc": "logs"}, [10.0]), ("capacity", {"pvc": "logs"}, [100.0]))
    name = "__name__"
    assert run(h, 'restarts{namespace="shop"}') == [({**a, name: "restarts"}, 1.0), ({**b, name: "restarts"}, 4.0)]
    assert [lb["pod"] for lb, _ in run(h, 'restarts{pod=~"a|c", namespace!="dev"}')] == ["a"]
    assert [lb["pod"] for lb, _ in run(h, 'restarts{pod!~"a|c"}')] == ["b"]
    assert run(h, "increase(restarts{pod=\"a\"}[1m])")[0][1] == pytest.approx(3 * 60 / 4)
    assert run(h, 'rate(restarts{pod="c"}[1m])') == [(c, 1.0)]
    assert run(h, 'max_over_time(restarts{pod="a"}[1m])') == [(a, 2.0)]
    assert run(h, 'avg_over_time(restarts{pod="b"}[1m])') == [(b, 4.0)]
    assert run(h, "sum by (namespace) (restarts)") == [({"namespace": "dev"}, 5.0), ({"namespace": "shop"}, 5.0)]
    assert run(h, "count without (pod, container) (restarts)") == [({"namespace": "dev"}, 1.0),
                                                                   ({"namespace": "shop"}, 2.0)]
    assert run(h, "max(restarts) by (container)") == [({"container": "job"}, 5.0), ({"container": "web"}, 4.0)]
    assert run(h, "used / capacity > 0.8") == [({"pvc": "data"}, 0.9)]
    assert [lb["pod"] for lb, _ in run(h, "restarts > 3")] == ["b", "c"]
    assert run(h, "restarts * 2 - 1 >= 9") == [(c, 9.0)]
    assert [lb["pod"] for lb, _ in run(h, 'restarts > 3 and restarts{namespace="shop"}')] == ["b"]
    assert [lb["pod"] for lb, _ in run(h, 'restarts > 3 unless restarts{namespace="shop"}')] == ["c"]
    assert [lb["pod"] for lb, _ in run(h, 'restarts{pod="a"} or restarts{pod="c"}')] == ["a", "c"]
    assert run(h, "absent_metric > 0") == []


def test_rule_files_are_prometheus_format_and_errors_name_the_rule() -> None:
    rules = parse_rule_file("""
groups:
- name: g
  labels: {team: a}
  rules:
  - alert: High
    expr: sum by (pod) (rate(x[5m])) > 1
    for: 2m
    keep_firing_for: 30s
    labels: {severity: page}
    annotations: {summary: "{{ $labels.pod }} is high"}
""", "ns/cm[rules.yaml]")
    assert [(r.name, r.for_, r.keep_firing_for, r.labels) for r in rules] == [
        ("High", 120.0, 30.0, {"team": "a", "severity": "page"})]
    for text, message in [
        ("groups: [{name: g, rules: [{alert: A, expr: 'x >'}]}]", "groups[0].rules[0].expr: 1:4: unexpected end"),
        ("groups: [{name: g, rules: [{record: r, expr: x}]}]", "groups[0].rules[0].record: recording rules"),
        ("groups: [{name: g, rules: [{alert: A, expr: '1 > 0'}]}]", "must select series"),
        ("groups: [{name: g, rules: [{alert: A, expr: x, for: soon}]}]", "groups[0].rules[0].for: 'soon'"),
        ("groups: [{name: g, rules: [{alert: A, expr: x, severity: high}]}]", "groups[0].rules[0].severity: unknown"),
        ("groups: [{name: g}, {name: g}]", "groups[1].name: 'g' given twice"),
        ("groups: [{name: g, rules: [{alert: A}]", "invalid YAML at line 1"),
    ]:
        with pytest.raises(RuleFileError) as err:
            parse_rule_file(text)
        assert message in str(err.value), (text, str(err.value))


class HistoryQuerier:
    """The query API's evaluation, in process: the rule sources' Querier over a real history."""

    def __init__(self, history: MetricsHistory) -> None:
        self.evaluator = Evaluator(HistorySource(history))

    async def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        return [(s.labels, s.value) for s in self.evaluator.vector(parse(expr))]


async def test_rule_files_that_escaped_admission_are_skipped_and_reported_once() -> None:
    good = ("groups: [{name: g, rules: [{alert: Big, expr: 'x > 1', "
            "annotations: {summary: '{{ $labels.pod }}: {{ $value }}'}}]}]")
    bad = "groups: [{name: g, rules: [{alert: Bad, expr: 'x >'}]}]"
    cm = {"metadata": {"namespace": "ns", "name": "rules", "resourceVersion": "1",
                       "labels": {"bosun.io/alert-rules": "true"}}, "data": {"a.yaml": good, "b.yaml": bad}}
    plain = {"metadata": {"namespace": "ns", "name": "other", "resourceVersion": "1"}, "data": {"c.yaml": bad}}
    rules = UserRules()
    news = rules.sync([cm, plain])
    assert [(c["metadata"]["name"], e) for c, e in news] == [
        ("rules", "b.yaml: groups[0].rules[0].expr: 1:4: unexpected end of expression; expected '(' or '-' or '{' "
                  "or a name or a number or a quoted string")]
    assert rules.sync([cm, plain]) == []  # the same resourceVersion: not reported again
    rows = rules.describe()
    assert [(r["alert"], r["health"]) for r in rows] == [("Big", "unknown"), ("", "invalid")]
    assert rows[1]["source"] == "ns/rules[b.yaml]" and "1:4" in rows[1]["error"]

    h = history_with(("x", {"pod": "p1"}, [5.0]), ("x", {"pod": "p2"}, [0.5]))
    (source,) = rules.sources()
    await source.refresh(HistoryQuerier(h), time.time())
    assert [(dict(c.labels), c.annotations["summary"]) for c in source.active(time.time())] == [
        ({"pod": "p1"}, "p1: 5")]
    assert rules.describe()[0]["health"] == "ok" and rules.describe()[0]["series"] == 1
    assert rules.sync([]) == [] and rules.sources() == []  # the ConfigMap deleted: its rules are gone


def test_http_check_targets() -> None:
    def pod(check: str, **extra: object) -> dict[str, object]:
        return {"metadata": {"annotations": {"bosun.io/http-check": check, **extra}},
                "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": "10.1.2.3"}}

    assert check_url(pod("/healthz")) == "http://10.1.2.3:8080/healthz"  # the first container port
    assert check_url(pod("ready", **{"bosun.io/http-check-port": "9000"})) == "http://10.1.2.3:9000/ready"
    assert check_url(pod("http://10.96.0.10:80/")) == "http://10.96.0.10:80/"  # a ClusterIP, as written
    assert check_url({**pod("/x"), "status": {"phase": "Pending"}}) is None  # starting: not a failing check
    assert check_url({**pod("/x"), "metadata": {}}) is None
