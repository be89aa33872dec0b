"""LimitRange and ResourceQuota as a Kubernetes user meets them, through real kubectl against the
whole control plane: defaults and bounds of LimitRanges on created pods and claims, quotas'
``status.used`` following creates and deletes, creates over a quota refused with upstream's
messages (also when 20 race for 5 places), a Deployment scaled past a quota, and the tables."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer
from tests.e2e.helpers import wait_until
from tests.e2e.test_kubectl import Kubectl

from bosun.api.registry import must_by_plural
from bosun.client import Client
from bosun.client.errors import ApiError

PODS = must_by_plural("", "v1", "pods")


@pytest.fixture
def kubectl(cluster: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    k = Kubectl(cluster.kubeconfig, namespace, tmp_path / "kubecache")
    k("create", "namespace", namespace, ns=False)
    try:
        yield k
    finally:
        k("delete", "namespace", namespace, "--wait=false", ns=False, check=False)


def pod(name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
        init: bool = False) -> str:
    res: dict[str, Any] = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox:1.36", "resources": res}]}
    if init:
        spec["initContainers"] = [{"name": "i", "image": "busybox:1.36"}]
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def apply(kubectl: Kubectl, manifest: str, check: bool = True) -> Any:
    return kubectl("apply", "-f", "-", input=manifest, check=check)


LIMITS = """
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 200m}
    min: {cpu: 100m}
    max: {cpu: "1", memory: 1Gi}
  - type: PersistentVolumeClaim
    min: {storage: 1Gi}
    max: {storage: 2Gi}
"""


def test_limit_range_defaults_and_bounds(kubectl: Kubectl) -> None:
    apply(kubectl, LIMITS)
    lr = kubectl.json("get", "limitrange", "limits")
    # Upstream's defaulting: defaultRequest memory from default.
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "200m", "memory": "256Mi"}
    wait_until(lambda: "limits" in kubectl("get", "limits").stdout, 10, "the LimitRange listed")

    def created(manifest: str) -> Any:
        for _ in range(20):  # the watch cache of the server learns the LimitRange first
            apply(kubectl, manifest)
            obj = kubectl.json("get", "pod", json.loads(manifest)["metadata"]["name"])
            if obj["metadata"].get("annotations"):
                return obj
            kubectl("delete", "pod", obj["metadata"]["name"], "--wait=false")
        raise AssertionError("no defaults applied")

    p = created(pod("plain", init=True))
    c = p["spec"]["containers"][0]["resources"]
    assert c == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "256Mi"}}
    assert p["spec"]["initContainers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for init container i; cpu, memory limit for init container i; "
        "cpu, memory request for container c; cpu, memory limit for container c")
    # What a container sets is kept: only the memory limit (and request) come from the defaults.
    p2 = created(pod("own", requests={"cpu": "300m"}, limits={"cpu": "800m"}))
    assert p2["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "800m", "memory": "256Mi"}, "requests": {"cpu": "300m", "memory": "256Mi"}}
    assert p2["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: memory request for container c; memory limit for container c")

    r = apply(kubectl, pod("small", requests={"cpu": "50m"}, limits={"cpu": "2", "memory": "2Gi"}), check=False)
    assert r.returncode != 0
    assert ('pods "small" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, '
            "maximum cpu usage per Container is 1, but limit is 2, "
            "maximum memory usage per Container is 1Gi, but limit is 2Gi]") in r.stderr, r.stderr
    r = apply(kubectl, pod("big", limits={"memory": "2Gi"}), check=False)
    assert 'pods "big" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi' in r.stderr
    assert "big" not in kubectl("get", "pods", "-o", "name").stdout

    claim = ('{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "huge"}, "spec": '
             '{"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}')
    r = apply(kubectl, claim, check=False)
    assert ('persistentvolumeclaims "huge" is forbidden: maximum storage usage per PersistentVolumeClaim '
            "is 2Gi, but request is 5Gi") in r.stderr, r.stderr
    table = kubectl("get", "limits").stdout.splitlines()
    assert table[0].split() == ["NAME", "CREATED", "AT"] and table[1].split()[0] == "limits", table
    assert table[1].split()[1] == lr["metadata"]["creationTimestamp"], table
    out = kubectl("describe", "limitrange", "limits").stdout
    assert "Container" in out and "PersistentVolumeClaim" in out and "storage" in out


POD_LIMITS = """
apiVersion: v1
kind: LimitRange
metadata: {name: per-pod}
spec:
  limits:
  - type: Pod
    max: {memory: 1Gi}
  - type: Container
    maxLimitRequestRatio: {cpu: "2"}
"""


def test_pod_sums_and_ratio(kubectl: Kubectl) -> None:
    apply(kubectl, POD_LIMITS)
    two = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"}, "spec": {"containers": [
        {"name": f"c{i}", "image": "busybox:1.36",
         "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "100m", "memory": "768Mi"}}}
        for i in range(2)]}}

    def refused() -> bool:
        r = apply(kubectl, json.dumps(two), check=False)
        if r.returncode == 0:
            kubectl("delete", "pod", "two", "--wait=false")
        return "forbidden" in r.stderr
    wait_until(refused, 15, "the Pod limit enforced")
    r = apply(kubectl, json.dumps(two), check=False)
    assert 'pods "two" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 1536Mi' in r.stderr, r.stderr
    r = apply(kubectl, pod("ratio", requests={"cpu": "100m"}, limits={"cpu": "300m", "memory": "64Mi"}), check=False)
    assert ('pods "ratio" is forbidden: cpu max limit to request ratio per Container is 2, '
            "but provided ratio is 3.000000") in r.stderr, r.stderr


def test_invalid_limit_range_and_quota_refused(kubectl: Kubectl) -> None:
    bad = """
apiVersion: v1
kind: LimitRange
metadata: {name: bad}
spec:
  limits:
  - type: Container
    default: {cpu: "2"}
    max: {cpu: "1"}
"""
    r = apply(kubectl, bad, check=False)
    assert r.returncode != 0
    assert 'spec.limits[0].default[cpu]: Invalid value: "2": default value 2 is greater than max value 1' in r.stderr
    r = apply(kubectl, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: neg}\nspec:\n  hard: {pods: '-1'}\n",
              check=False)
    assert 'spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0' in r.stderr, r.stderr


def quota(kubectl: Kubectl, name: str) -> Any:
    return kubectl.json("get", "resourcequota", name)


def wait_used(kubectl: Kubectl, name: str, want: dict[str, str], within: float = 30) -> None:
    wait_until(lambda: quota(kubectl, name).get("status", {}).get("used") == want, within,
               f"quota {name} used {want} (last {quota(kubectl, name).get('status')})")


COMPUTE_QUOTA = """
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute}
spec:
  hard: {requests.cpu: "1", requests.memory: 1Gi, limits.cpu: "2", pods: "10"}
"""


def test_quota_follows_creates_and_deletes_and_refuses(kubectl: Kubectl) -> None:
    apply(kubectl, pod("before", requests={"cpu": "100m", "memory": "100Mi"}, limits={"cpu": "200m"}))
    apply(kubectl, COMPUTE_QUOTA)
    wait_used(kubectl, "compute", {"limits.cpu": "200m", "pods": "1", "requests.cpu": "100m",
                                   "requests.memory": "100Mi"})
    assert quota(kubectl, "compute")["status"]["hard"] == {"limits.cpu": "2", "pods": "10", "requests.cpu": "1",
                                                           "requests.memory": "1Gi"}
    apply(kubectl, pod("a", requests={"cpu": "400m", "memory": "512Mi"}, limits={"cpu": "1"}))
    assert quota(kubectl, "compute")["status"]["used"] == {
        "limits.cpu": "1200m", "pods": "2", "requests.cpu": "500m", "requests.memory": "612Mi"}
    # A create the store refuses (the name is taken) gives its charge back at once.
    r = kubectl("create", "-f", "-", input=pod("a", requests={"cpu": "400m", "memory": "1Mi"}, limits={"cpu": "400m"}),
                check=False)
    assert "AlreadyExists" in r.stderr, r.stderr
    assert quota(kubectl, "compute")["status"]["used"]["requests.cpu"] == "500m"
    r = apply(kubectl, pod("over", requests={"cpu": "600m", "memory": "1Mi"}, limits={"cpu": "600m"}), check=False)
    assert ('pods "over" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, '
            "used: requests.cpu=500m, limited: requests.cpu=1") in r.stderr, r.stderr
    r = apply(kubectl, pod("bare", requests={"cpu": "10m"}), check=False)
    assert ('pods "bare" is forbidden: failed quota: compute: must specify limits.cpu for: c; '
            "requests.memory for: c") in r.stderr, r.stderr
    table = kubectl("get", "quota", "compute").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "pods: 2/10, requests.cpu: 500m/1, requests.memory: 612Mi/1Gi" in table[1]
    assert table[1].rstrip().endswith("limits.cpu: 1200m/2")
    described = kubectl("describe", "quota", "compute").stdout
    assert ["requests.cpu", "500m", "1"] in [line.split() for line in described.splitlines()], described
    kubectl("delete", "pod", "a", "--grace-period=0", "--force")
    wait_used(kubectl, "compute", {"limits.cpu": "200m", "pods": "1", "requests.cpu": "100m",
                                   "requests.memory": "100Mi"})


def test_count_quota_and_deployment_over_quota(kubectl: Kubectl) -> None:
    apply(kubectl, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: count}\n"
                   "spec:\n  hard: {pods: '2', count/deployments.apps: '1', configmaps: '2'}\n")
    # The namespace's kube-root-ca.crt counts, as upstream.
    wait_used(kubectl, "count", {"configmaps": "1", "count/deployments.apps": "0", "pods": "0"})
    apply(kubectl, pod("p1"))
    apply(kubectl, pod("p2"))
    r = apply(kubectl, pod("p3"), check=False)
    assert ('pods "p3" is forbidden: exceeded quota: count, requested: pods=1, used: pods=2, limited: pods=2'
            in r.stderr), r.stderr
    kubectl("create", "configmap", "one")
    r = kubectl("create", "configmap", "two", check=False)
    assert "exceeded quota: count, requested: configmaps=1, used: configmaps=2, limited: configmaps=2" in r.stderr
    kubectl("delete", "pod", "p1", "p2", "--grace-period=0", "--force")
    wait_used(kubectl, "count", {"configmaps": "2", "count/deployments.apps": "0", "pods": "0"})
    kubectl("create", "deployment", "web", "--image=busybox:1.36", "--replicas=3")
    r = kubectl("create", "deployment", "web2", "--image=busybox:1.36", check=False)
    assert "exceeded quota: count, requested: count/deployments.apps=1" in r.stderr, r.stderr

    def short_with_event() -> bool:
        rs = kubectl.json("get", "rs")["items"]
        if not rs or (rs[0].get("status") or {}).get("replicas") != 2:
            return False
        events = kubectl.json("get", "events")["items"]
        return any(e.get("reason") == "FailedCreate" and "exceeded quota: count" in (e.get("message") or "")
                   for e in events)
    wait_until(short_with_event, 45, "the ReplicaSet at 2 of 3 with a FailedCreate event naming the quota")
    assert len(kubectl("get", "pods", "-o", "name").stdout.split()) == 2
    rs = kubectl.json("get", "rs")["items"][0]
    assert any(c.get("type") == "ReplicaFailure" for c in rs["status"].get("conditions") or []), rs["status"]


def test_concurrent_creates_never_exceed_quota(cluster: RunningServer, kubectl: Kubectl) -> None:
    apply(kubectl, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: five}\nspec:\n  hard: {pods: '5'}\n")
    wait_used(kubectl, "five", {"pods": "0"})

    async def race() -> list[Any]:
        async with Client.from_kubeconfig(cluster.kubeconfig) as c:
            async def one(i: int) -> Any:
                body = json.loads(pod(f"r{i}"))
                try:
                    return await c.create(PODS, body, kubectl.namespace)
                except ApiError as exc:
                    return exc
            return await asyncio.gather(*(one(i) for i in range(20)))
    results = asyncio.run(race())
    made = [r for r in results if not isinstance(r, ApiError)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(made) == 5, [str(r) for r in refused]
    assert all(r.status == 403 and "exceeded quota: five" in str(r) for r in refused), [str(r) for r in refused]
    assert len(kubectl("get", "pods", "-o", "name").stdout.split()) == 5
    assert quota(kubectl, "five")["status"]["used"] == {"pods": "5"}


SCOPED = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ResourceQuota
  metadata: {name: best-effort}
  spec:
    hard: {pods: "1"}
    scopes: [BestEffort]
- apiVersion: v1
  kind: ResourceQuota
  metadata: {name: high}
  spec:
    hard: {pods: "1", requests.cpu: "1"}
    scopeSelector:
      matchExpressions: [{scopeName: PriorityClass, operator: In, values: [quota-high]}]
"""


def test_scoped_quotas_count_only_the_pods_they_select(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", ns=False, input=(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: quota-high}\nvalue: 1000\n"))
    apply(kubectl, SCOPED)
    wait_used(kubectl, "best-effort", {"pods": "0"})
    wait_used(kubectl, "high", {"pods": "0", "requests.cpu": "0"})
    apply(kubectl, pod("be1"))
    r = apply(kubectl, pod("be2"), check=False)
    assert "exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1" in r.stderr, r.stderr
    apply(kubectl, pod("burstable", requests={"cpu": "100m"}))  # neither quota selects it
    high = json.loads(pod("important", requests={"cpu": "300m"}))
    high["spec"]["priorityClassName"] = "quota-high"
    apply(kubectl, json.dumps(high))
    assert quota(kubectl, "high")["status"]["used"] == {"pods": "1", "requests.cpu": "300m"}
    assert quota(kubectl, "best-effort")["status"]["used"] == {"pods": "1"}
    high["metadata"]["name"] = "important2"
    r = apply(kubectl, json.dumps(high), check=False)
    assert "exceeded quota: high, requested: pods=1, used: pods=1, limited: pods=1" in r.stderr, r.stderr
    kubectl("delete", "priorityclass", "quota-high", ns=False, check=False)
    rows = [line.split(None, 2) for line in kubectl("get", "quota").stdout.splitlines()]
    assert [r[0] for r in rows] == ["NAME", "best-effort", "high"]
    assert rows[2][2].strip() == "pods: 1/1, requests.cpu: 300m/1", rows


def test_update_charged_what_it_adds(kubectl: Kubectl) -> None:
    apply(kubectl, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: lb}\n"
                   "spec:\n  hard: {services.loadbalancers: '1', services: '5'}\n")
    wait_used(kubectl, "lb", {"services": "0", "services.loadbalancers": "0"})
    kubectl("create", "service", "loadbalancer", "one", "--tcp=80:80")
    kubectl("create", "service", "clusterip", "two", "--tcp=80:80")
    assert quota(kubectl, "lb")["status"]["used"] == {"services": "2", "services.loadbalancers": "1"}
    r = kubectl("patch", "service", "two", "-p", '{"spec": {"type": "LoadBalancer"}}', check=False)
    assert ('services "two" is forbidden: exceeded quota: lb, requested: services.loadbalancers=1, '
            "used: services.loadbalancers=1, limited: services.loadbalancers=1") in r.stderr, r.stderr
    kubectl("patch", "service", "one", "--type=merge", "-p", json.dumps({"spec": {
        "type": "ClusterIP", "externalTrafficPolicy": None, "allocateLoadBalancerNodePorts": None,
        "ports": [{"name": "80-80", "port": 80, "targetPort": 80, "protocol": "TCP"}]}}))
    wait_used(kubectl, "lb", {"services": "2", "services.loadbalancers": "0"})
    kubectl("patch", "service", "two", "-p", '{"spec": {"type": "LoadBalancer"}}')
    assert quota(kubectl, "lb")["status"]["used"] == {"services": "2", "services.loadbalancers": "1"}


def crd(group: str) -> str:
    return json.dumps({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})


def widget(group: str, name: str) -> str:
    return json.dumps({"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}})


def test_custom_resource_counts_are_given_back_when_objects_go(kubectl: Kubectl) -> None:
    group = f"{kubectl.namespace}.quota.example.com"
    count = f"count/widgets.{group}"
    try:
        kubectl("create", "-f", "-", input=crd(group), ns=False)
        kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s", ns=False)
        kubectl("create", "-f", "-", input=widget(group, "before"))
        apply(kubectl, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: widgets}\n"
                       f"spec:\n  hard: {{{count}: '2'}}\n")
        wait_used(kubectl, "widgets", {count: "1"})  # counted, not only charged: it predates the quota
        kubectl("create", "-f", "-", input=widget(group, "w2"))
        r = kubectl("create", "-f", "-", input=widget(group, "w3"), check=False)
        assert (f'widgets.{group} "w3" is forbidden: exceeded quota: widgets, requested: {count}=1, '
                f"used: {count}=2, limited: {count}=2") in r.stderr, r.stderr
        kubectl("delete", f"widgets.{group}", "before", "w2")
        wait_used(kubectl, "widgets", {count: "0"})
        kubectl("create", "-f", "-", input=widget(group, "w3"))
        assert quota(kubectl, "widgets")["status"]["used"] == {count: "1"}
        # the kind goes (its objects with it) and comes back: still counted
        kubectl("delete", "crd", f"widgets.{group}", "--timeout=60s", ns=False)
        wait_used(kubectl, "widgets", {count: "0"})
        kubectl("create", "-f", "-", input=crd(group), ns=False)
        kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s", ns=False)
        wait_until(lambda: kubectl("create", "-f", "-", input=widget(group, "again"), check=False).returncode == 0,
                   30, "a widget made once the CRD is back")
        wait_used(kubectl, "widgets", {count: "1"})
        kubectl("delete", f"widgets.{group}", "again")
        wait_used(kubectl, "widgets", {count: "0"})
    finally:
        kubectl("delete", "crd", f"widgets.{group}", "--ignore-not-found", "--wait=false", ns=False, check=False)


def affinity_pod(name: str, term: dict[str, Any] | None, kind: str = "podAffinity", preferred: bool = False) -> str:
    body = json.loads(pod(name))
    if term is not None:
        base = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname", **term}
        terms: dict[str, Any] = (
            {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": base}]}
            if preferred else {"requiredDuringSchedulingIgnoredDuringExecution": [base]})
        body["spec"]["affinity"] = {kind: terms}
    return json.dumps(body)


def test_cross_namespace_pod_affinity_scope(kubectl: Kubectl) -> None:
    apply(kubectl, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: cross}\nspec:\n  hard: {pods: '2'}\n"
                   "  scopeSelector:\n    matchExpressions:\n"
                   "    - {scopeName: CrossNamespacePodAffinity, operator: Exists}\n")
    wait_used(kubectl, "cross", {"pods": "0"})
    apply(kubectl, affinity_pod("local", {}))  # same-namespace terms: not in scope
    apply(kubectl, affinity_pod("plain", None))
    assert quota(kubectl, "cross")["status"]["used"] == {"pods": "0"}
    apply(kubectl, affinity_pod("by-list", {"namespaces": ["other"]}))
    apply(kubectl, affinity_pod("by-selector", {"namespaceSelector": {}}, "podAntiAffinity", preferred=True))
    assert quota(kubectl, "cross")["status"]["used"] == {"pods": "2"}
    r = apply(kubectl, affinity_pod("third", {"namespaceSelector": {"matchLabels": {"team": "a"}}}), check=False)
    assert ('pods "third" is forbidden: exceeded quota: cross, requested: pods=1, used: pods=2, limited: pods=2'
            in r.stderr), r.stderr
    apply(kubectl, affinity_pod("local2", {"namespaces": []}))  # an empty list is the pod's own namespace
    kubectl("delete", "pod", "by-list", "--grace-period=0", "--force")
    wait_used(kubectl, "cross", {"pods": "1"})
