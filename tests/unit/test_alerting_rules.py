"""The alerting pieces alone: rule life (for, keepFiringFor), grouping and de-duplication
with a receiver that was down, silences' matchers, the built-in rules' reading of objects,
and configuration errors that name the field."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from bosun.alerting import status
from bosun.alerting.builtin import (
    BUILTIN,
    CertificateExpiring,
    Cluster,
    ContainerOOMKilled,
    HpaMaxedOut,
    NodeCondition,
    PodRestartingOften,
    RuleSettings,
)
from bosun.alerting.config import ConfigError, Route, parse_config, parse_duration
from bosun.alerting.engine import Engine
from bosun.alerting.model import Alert, Candidate, fingerprint
from bosun.alerting.notify import Notifier
from bosun.alerting.silences import Silence, SilenceError, muted_by, parse_matcher
from bosun.security.pki import ensure_pki

Obj = dict[str, Any]


@dataclass
class Source:
    name: str
    now_active: list[Candidate] = field(default_factory=list)

    def active(self, now: float) -> list[Candidate]:
        return self.now_active


@dataclass
class Objs:
    items: list[Obj]

    def list(self, namespace: str | None = None) -> list[Obj]:
        return self.items


def test_alert_is_pending_for_its_for_then_fires_and_keeps_firing_before_it_resolves() -> None:
    src, eng = Source("X", [Candidate({"pod": "p"})]), Engine()
    rules: list[Any] = [(src, RuleSettings(for_=5.0, keep_firing_for=3.0, labels={"severity": "warning"}))]
    assert eng.evaluate(rules, 100.0).fired == []
    assert eng.evaluate(rules, 104.0).fired == []
    fired = eng.evaluate(rules, 105.0).fired
    assert [a.labels for a in fired] == [{"pod": "p", "severity": "warning", "alertname": "X"}]
    src.now_active = []  # between two crashes
    assert eng.evaluate(rules, 107.0).resolved == [] and len(eng.firing()) == 1
    assert [a.name for a in eng.evaluate(rules, 108.5).resolved] == ["X"]
    assert eng.alerts == {}


def _alert(name: str, ns: str, pod: str) -> Alert:
    labels = {"alertname": name, "namespace": ns, "pod": pod}
    return Alert(name, labels, {"summary": pod}, fingerprint(labels), "firing", 0.0, 0.0, 0.0)


def test_notifier_groups_waits_deduplicates_repeats_and_resolves_what_was_heard() -> None:
    route = Route("ops", group_wait=2.0, group_interval=10.0, repeat_interval=100.0)
    n = Notifier()
    a, b = _alert("Crash", "ns1", "a"), _alert("Crash", "ns1", "b")
    other = _alert("Crash", "ns2", "c")

    def router(alert: Alert) -> tuple[Route, list[str]]:
        return route, ["ops/webhook/0"]

    assert n.due(router, [a], set(), 0.0) == []  # groupWait
    notes = n.due(router, [a, b, other], set(), 2.0)  # ns2's group is new: it waits its own groupWait
    assert [(x.group_labels["namespace"], len(x.firing)) for x in notes] == [("ns1", 2)]
    assert n.due(router, [a, b, other], set(), 3.0) == []  # ns1 in flight; ns2 still waiting
    n.delivered(notes[0], 3.0)
    later = n.due(router, [a, b, other], set(), 4.0)
    assert [(x.group_labels["namespace"], len(x.firing)) for x in later] == [("ns2", 1)]
    n.delivered(later[0], 4.0)
    assert n.due(router, [a, b, other], set(), 50.0) == []  # nothing changed: no duplicate
    repeat = n.due(router, [a, b, other], set(), 104.0)  # repeatInterval
    assert sorted(x.group_labels["namespace"] for x in repeat) == ["ns1", "ns2"]

    n2 = Notifier()  # a receiver down while one alert resolves and another fires
    assert n2.due(router, [a], set(), 0.0) == []
    n2.delivered(n2.due(router, [a], set(), 2.0)[0], 2.0)
    retry = n2.due(router, [b], set(), 12.0)[0]  # a resolved, b fires: one message says both
    assert [x.labels["pod"] for x in retry.firing] == ["b"] and [x.labels["pod"] for x in retry.resolved] == ["a"]
    newer = n2.due(router, [], set(), 13.0)  # b over too before delivery: the waiting message is replaced
    assert len(newer) == 1 and newer[0].firing == [] and [x.labels["pod"] for x in newer[0].resolved] == ["a"]
    n2.delivered(retry, 14.0)  # the older one got through after all: the newer still stands
    assert n2.groups[retry.group_key].inflight is newer[0]


def test_silenced_alert_is_neither_sent_nor_resolved() -> None:
    route = Route("ops", group_wait=0.0, group_interval=0.0)
    n, a = Notifier(), _alert("Crash", "ns1", "a")

    def router(alert: Alert) -> tuple[Route, list[str]]:
        return route, ["ops/email/0"]

    n.delivered(n.due(router, [a], set(), 1.0)[0], 1.0)
    assert n.due(router, [], {a.fingerprint}, 2.0) == []  # muted: no "resolved"
    s = Silence("s1", (parse_matcher("namespace=ns1"), parse_matcher('pod=~"a|b"')), 0.0, 10.0)
    assert muted_by([s], a.labels, 5.0) == "s1" and muted_by([s], a.labels, 10.0) == ""
    assert parse_matcher("alertname!=X").matches({"alertname": "Y"})
    with pytest.raises(SilenceError, match="not a matcher"):
        parse_matcher("no matcher here")
    with pytest.raises(SilenceError, match="bad regular expression"):
        parse_matcher("pod=~(")


def test_builtin_rules_read_objects() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"}, "status": {"containerStatuses": [
        {"name": "c", "lastState": {"terminated": {"reason": "OOMKilled", "finishedAt": "2026-01-01T00:00:00Z"}}}]}}
    oom = ContainerOOMKilled(Objs([pod]))
    assert [c.labels for c in oom.active(1767225600.0 + 5)] == [{"namespace": "n", "pod": "p", "container": "c"}]
    assert list(oom.active(1767225600.0 + 3600)) == []  # old news
    node = {"metadata": {"name": "w1"}, "status": {"conditions": [{"type": "DiskPressure", "status": "True"}]}}
    disk = BUILTIN["KubeNodeDiskPressure"].make(Cluster(Objs([]), Objs([node]), Objs([]), Objs([])))
    assert isinstance(disk, NodeCondition) and [c.labels for c in disk.active(0)] == [{"node": "w1"}]
    hpa = {"metadata": {"name": "web", "namespace": "n"}, "spec": {"maxReplicas": 4}, "status": {"currentReplicas": 4}}
    assert [c.labels["horizontalpodautoscaler"] for c in HpaMaxedOut(Objs([hpa])).active(0)] == ["web"]


def test_restarting_often_counts_restarts_within_its_window() -> None:
    pod: Obj = {"metadata": {"name": "p", "namespace": "n", "uid": "u1", "resourceVersion": "1"},
                "status": {"containerStatuses": [{"name": "c", "restartCount": 1}]}}
    rule = PodRestartingOften(Objs([pod]), times=3, window=100.0)
    assert list(rule.active(0.0)) == []
    pod["status"]["containerStatuses"][0]["restartCount"] = 3
    pod["metadata"]["resourceVersion"] = "2"
    assert list(rule.active(50.0)) == []
    pod["status"]["containerStatuses"][0]["restartCount"] = 4
    pod["metadata"]["resourceVersion"] = "3"
    assert [c.labels["pod"] for c in rule.active(60.0)] == ["p"]
    assert [c.labels["pod"] for c in rule.active(70.0)] == ["p"]  # unchanged, still within the window
    assert list(rule.active(500.0)) == []  # the restarts are old news


def test_certificate_expiring_reads_tls_secrets(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ["127.0.0.1"])
    crt = x509.load_pem_x509_certificate(pki.server_cert_path.read_bytes())
    secret = {"metadata": {"name": "tls", "namespace": "n", "uid": "u", "resourceVersion": "1"},
              "type": "kubernetes.io/tls",
              "data": {"tls.crt": base64.b64encode(pki.server_cert_path.read_bytes()).decode()}}
    rule = CertificateExpiring(Objs([secret, {"metadata": {"name": "o", "uid": "x"}, "type": "Opaque"}]))
    ends = crt.not_valid_after_utc.timestamp()
    assert list(rule.active(ends - 30 * 86400)) == []
    soon = list(rule.active(ends - 86400 * 2.5))
    assert [c.labels["secret"] for c in soon] == ["tls"] and "expires in 2 day(s)" in soon[0].annotations["summary"]


@pytest.mark.parametrize(("text", "message"), [
    ("receivers: [", "invalid YAML at line"),
    ("receivers:\n- name: a\n  webhooks: [{url: ftp://x}]", "receivers[0].webhooks[0].url: must be an http"),
    ("receivers:\n- name: a\n  emails: [{to: x@y, smarthost: mail}]",
     "receivers[0].emails[0].smarthost: must be host:port"),
    ("receivers:\n- name: a\nroute: {receiver: b}", "route.receiver: no receiver named 'b'"),
    ("rules: {NoSuchRule: {}}", "rules.NoSuchRule: no such rule"),
    ("rules: {KubePodCrashLooping: {for: soon}}", "rules.KubePodCrashLooping.for: 'soon' is not a duration"),
    ("receivers:\n- name: a\n  sms: {}", "receivers[0].sms: unknown field"),
])
def test_bad_config_names_the_field_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, frozenset(BUILTIN))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_minimal_config_routes_to_the_only_receiver() -> None:
    cfg = parse_config("receivers:\n- name: me\n  emails: [{to: me@example.com, smarthost: 'mx:25', tls: none}]\n"
                       "  webhooks: [{urlSecret: {name: hook, key: url}}]\n", frozenset(BUILTIN))
    assert cfg.route is not None and cfg.route.receiver == "me" and cfg.route.group_by == ("alertname", "namespace")
    assert parse_duration("1h30m", "x") == 5400.0 and parse_duration("500ms", "x") == 0.5


def test_status_lists_at_most_max_rows_and_counts_the_rest() -> None:
    many = [_alert("NodeDown", "", f"n{i}") for i in range(status.MAX_ROWS + 7)]
    data = status.render(many, {many[0].fingerprint: "s1"}, "ok")
    rows, config = status.parse(data)
    assert len(rows) == status.MAX_ROWS and status.omitted(data) == 7 and config == "ok"
    assert sum(1 for r in rows if r.get("silencedBy") == "s1") == 1


def test_notifier_says_when_the_next_message_is_due() -> None:
    """``next_at``: the end of a new group's groupWait, then of groupInterval after a change,
    then of repeatInterval, so that the alerting loop wakes then and not at its next evaluation."""
    route = Route("ops", group_wait=5.0, group_interval=60.0, repeat_interval=3600.0)
    n = Notifier()
    a, b = _alert("Crash", "ns1", "a"), _alert("Crash", "ns1", "b")

    def router(alert: Alert) -> tuple[Route, list[str]]:
        return route, ["ops/webhook/0"]

    assert n.due(router, [], set(), 0.0) == [] and n.next_at is None
    assert n.due(router, [a], set(), 100.3) == [] and n.next_at == 105.3
    assert n.due(router, [a], set(), 105.29) == [] and n.next_at == 105.3
    first = n.due(router, [a], set(), 105.3)  # at the moment, not a round later
    assert len(first) == 1 and n.next_at is None  # in flight: nothing else to wait for
    n.delivered(first[0], 105.4)
    assert n.due(router, [a], set(), 106.0) == [] and n.next_at == 105.4 + 3600.0
    assert n.due(router, [a, b], set(), 110.0) == [] and n.next_at == 105.4 + 60.0  # b joined
    assert [len(x.firing) for x in n.due(router, [a, b], set(), 165.4)] == [2]
