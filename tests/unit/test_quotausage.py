"""What objects cost a ResourceQuota (bosun.api.quotausage), as upstream's evaluators count."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bosun.api.quotausage import matches, missing_specs, pretty, usage
from bosun.api.registry import must_by_plural

PODS = must_by_plural("", "v1", "pods")
SERVICES = must_by_plural("", "v1", "services")
CLAIMS = must_by_plural("", "v1", "persistentvolumeclaims")
DEPLOYMENTS = must_by_plural("apps", "v1", "deployments")


def container(name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> Any:
    return {"name": name, "resources": {"requests": requests or {}, "limits": limits or {}}}


def test_pod_usage_sums_containers_and_takes_the_largest_init_container() -> None:
    pod = {"spec": {"containers": [container("a", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m"}),
                                   container("b", {"cpu": "150m"})],
                    "initContainers": [container("i", {"cpu": "1"})]}}
    got = usage(PODS, pod)
    assert got["pods"] == got["count/pods"] == 1
    assert got["requests.cpu"] == got["cpu"] == Decimal(1)  # the init container's 1 > 250m
    assert got["requests.memory"] == got["memory"] == 64 * 2**20
    assert got["limits.cpu"] == Decimal("0.2")
    assert usage(PODS, dict(pod, status={"phase": "Succeeded"})) == {}


def test_services_claims_and_other_kinds() -> None:
    svc = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert usage(SERVICES, svc) == {"services": 1, "count/services": 1, "services.loadbalancers": 1,
                                    "services.nodeports": 2}
    claim = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "2Gi"}}}}
    got = usage(CLAIMS, claim)
    assert got["requests.storage"] == 2 * 2**30
    assert got["fast.storageclass.storage.k8s.io/requests.storage"] == 2 * 2**30
    assert got["fast.storageclass.storage.k8s.io/persistentvolumeclaims"] == 1
    assert usage(DEPLOYMENTS, {}) == {"count/deployments.apps": 1}


def test_scopes_select_pods_only() -> None:
    best_effort = {"spec": {"containers": [container("c")]}}
    burstable = {"spec": {"containers": [container("c", {"cpu": "1"})], "activeDeadlineSeconds": 30,
                          "priorityClassName": "high"}}
    q: dict[str, Any] = {"spec": {"scopes": ["BestEffort"]}}
    assert matches(q, PODS, best_effort) and not matches(q, PODS, burstable)
    assert not matches(q, SERVICES, {})
    q = {"spec": {"scopes": ["NotBestEffort", "Terminating"]}}
    assert matches(q, PODS, burstable) and not matches(q, PODS, best_effort)
    q = {"spec": {"scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}
    assert matches(q, PODS, burstable) and not matches(q, PODS, best_effort)
    q = {"spec": {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "DoesNotExist"}]}}}
    assert matches(q, PODS, best_effort) and not matches(q, PODS, burstable)
    assert matches({"spec": {}}, SERVICES, {})


def test_cross_namespace_pod_affinity_scope() -> None:
    q: dict[str, Any] = {"spec": {"scopes": ["CrossNamespacePodAffinity"]}}

    def pod(kind: str, term: dict[str, Any], preferred: bool = False) -> dict[str, Any]:
        terms = ({"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "podAffinityTerm": term}]}
                 if preferred else {"requiredDuringSchedulingIgnoredDuringExecution": [term]})
        return {"spec": {"affinity": {kind: terms}}}

    assert matches(q, PODS, pod("podAffinity", {"namespaces": ["b"]}))
    assert matches(q, PODS, pod("podAntiAffinity", {"namespaceSelector": {}}, preferred=True))
    assert not matches(q, PODS, pod("podAffinity", {"namespaces": [], "namespaceSelector": None}))
    assert not matches(q, PODS, pod("podAffinity", {"topologyKey": "h"}))
    assert not matches(q, PODS, {"spec": {"affinity": {"nodeAffinity": {}}}})
    assert not matches(q, PODS, {"spec": {}})


def test_missing_specs_and_messages() -> None:
    pod = {"spec": {"containers": [container("a", {"cpu": "1"}), container("b", {"cpu": "1"}, {"memory": "1Gi"})]}}
    assert missing_specs(pod, ["requests.cpu", "limits.memory", "pods"]) == {"limits.memory": ["a"]}
    assert pretty({"requests.memory": Decimal(2**30), "requests.cpu": Decimal("0.5")}) == (
        "requests.cpu=500m,requests.memory=1Gi")
