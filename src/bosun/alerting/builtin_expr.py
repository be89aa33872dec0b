"""The built-in rules refreshed before each evaluation: expressions over the metrics history,
like a user's rules, fed by what the agents report (HTTP checks, volume usage), and the
cluster's own certificates (read in TLS handshakes). They are on by default and overridden in
the ``bosun-alerting`` ConfigMap like the rules over objects (:mod:`.builtin`).
"""

from __future__ import annotations

from bosun.alerting.builtin import Builtin, Cluster, RuleSettings
from bosun.alerting.clustercerts import ClusterCertificateExpiring
from bosun.alerting.exprsource import ExprRuleSource
from bosun.alerting.model import RuleSource
from bosun.alerting.rulefile import ExprRule
from bosun.monitoring.promql import parse


def _rule(name: str, expr: str, summary: str, description: str = "") -> ExprRule:
    annotations = {"summary": summary, **({"description": description} if description else {})}
    return ExprRule(name, expr, parse(expr), annotations=annotations, source="built-in")


def _make(rule: ExprRule) -> Builtin:
    def make(cluster: Cluster) -> RuleSource:
        return ExprRuleSource(rule)

    return Builtin(make, RuleSettings(0.0, 0.0, {"severity": "warning"}))


def _with(b: Builtin, for_: float) -> Builtin:
    s = b.settings
    return Builtin(b.make, RuleSettings(for_, s.keep_firing_for, s.labels, s.annotations, s.enabled))


HTTP_CHECK_FAILING = _rule(
    "KubeHttpCheckFailing", 'probe_success{pod=~".+"} == 0',
    "HTTP check {{ $labels.url }} of pod {{ $labels.namespace }}/{{ $labels.pod }} is failing",
    "the GET did not answer 2xx/3xx within the timeout (see probe_http_status_code)")
# The checks that are no pod's: a Service's own address, a selectorless Service's endpoints.
SERVICE_HTTP_CHECK_FAILING = _rule(
    "KubeServiceHttpCheckFailing", 'probe_success{service=~".+", pod!~".+"} == 0',
    "HTTP check {{ $labels.url }} of service {{ $labels.namespace }}/{{ $labels.service }} is failing",
    "the GET did not answer 2xx/3xx within the timeout (see probe_http_status_code)")
VOLUME_FILLING_UP = _rule(
    "KubePersistentVolumeFillingUp", "kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes > 0.9",
    "PersistentVolumeClaim {{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }} is almost full",
    "{{ $value }} of its capacity is used")
EXPR_RULES = (HTTP_CHECK_FAILING, SERVICE_HTTP_CHECK_FAILING, VOLUME_FILLING_UP)

EXPR_BUILTIN: dict[str, Builtin] = {
    HTTP_CHECK_FAILING.name: _with(_make(HTTP_CHECK_FAILING), 30.0),
    SERVICE_HTTP_CHECK_FAILING.name: _with(_make(SERVICE_HTTP_CHECK_FAILING), 30.0),
    VOLUME_FILLING_UP.name: _with(_make(VOLUME_FILLING_UP), 60.0),
    "ClusterCertificateExpiring": Builtin(lambda c: ClusterCertificateExpiring(c.served),
                                          RuleSettings(0.0, 0.0, {"severity": "warning"})),
}
