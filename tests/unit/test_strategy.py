"""Each stage of the per-kind strategies alone: status reset, keeping allocated values,
defaults, canonical status, validation, update rules and deletion policy."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.helpers import must_by_kind

from bosun.api.registry import RESOURCES, Resource
from bosun.api.strategy import GENERIC, Strategy
from bosun.api.strategy.core import qos_class
from bosun.api.validation.podwarnings import for_pod, for_template

POD = must_by_kind("v1", "Pod")
NAMESPACE = must_by_kind("v1", "Namespace")
SERVICE = must_by_kind("v1", "Service")
NODE = must_by_kind("v1", "Node")
JOB = must_by_kind("batch/v1", "Job")
CONFIGMAP = must_by_kind("v1", "ConfigMap")
REPLICASET = must_by_kind("apps/v1", "ReplicaSet")
STORAGECLASS = must_by_kind("storage.k8s.io/v1", "StorageClass")


def obj(kind: str, **parts: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "x", "namespace": "default"}, **parts}


def pod(node: str = "", phase: str = "Running", grace: int | None = None, **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    o = obj("Pod", spec=spec, status={"phase": phase})
    o["metadata"].update(meta)
    return o


# ---- prepare_for_create ------------------------------------------------------------------


@pytest.mark.parametrize("res, status", [
    (NAMESPACE, {"phase": "Active"}),
    (SERVICE, {"loadBalancer": {}}),
    (must_by_kind("v1", "PersistentVolumeClaim"), {"phase": "Pending"}),
    (must_by_kind("v1", "PersistentVolume"), {"phase": "Pending"}),
    (must_by_kind("apps/v1", "Deployment"), {}),
    (REPLICASET, {"replicas": 0}),
    (must_by_kind("autoscaling/v2", "HorizontalPodAutoscaler"), {"desiredReplicas": 0}),
])
def test_create_resets_a_client_supplied_status(res: Resource, status: dict[str, Any]) -> None:
    o = obj(res.kind, status={"phase": "Forged", "replicas": 99})
    res.strategy.prepare_for_create(res, o)
    assert o["status"] == status


def test_create_gives_a_pod_pending_and_its_qos_class() -> None:
    o = pod(node="n1", phase="Running")
    POD.strategy.prepare_for_create(POD, o)
    assert o["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_create_keeps_what_a_node_reports_and_what_statusless_kinds_carry() -> None:
    node = obj("Node", status={"capacity": {"cpu": "2"}})
    NODE.strategy.prepare_for_create(NODE, node)
    assert node["status"] == {"capacity": {"cpu": "2"}}
    cm = obj("ConfigMap", status={"odd": True})  # no status subresource: not the strategy's business
    CONFIGMAP.strategy.prepare_for_create(CONFIGMAP, cm)
    assert cm["status"] == {"odd": True}


@pytest.mark.parametrize("resources, qos", [
    ({}, "BestEffort"),
    ({"requests": {"cpu": "100m"}}, "Burstable"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
])
def test_qos_class(resources: dict[str, Any], qos: str) -> None:
    assert qos_class({"spec": {"containers": [{"name": "c", "resources": resources}]}}) == qos


# ---- prepare_for_update ------------------------------------------------------------------


def _svc(type_: str = "ClusterIP", **spec: Any) -> dict[str, Any]:
    return obj("Service", spec={"type": type_, **spec})


def test_update_keeps_a_services_allocated_ip_and_node_ports() -> None:
    old = _svc("NodePort", clusterIP="10.96.0.7", clusterIPs=["10.96.0.7"],
               ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP",
                                                                         "nodePort": 30053}])
    new = _svc("NodePort", ports=[{"port": 80}, {"port": 53, "protocol": "UDP"}, {"port": 443}])
    SERVICE.strategy.prepare_for_update(new, old)
    assert new["spec"]["clusterIP"] == "10.96.0.7" and new["spec"]["clusterIPs"] == ["10.96.0.7"]
    assert [p.get("nodePort") for p in new["spec"]["ports"]] == [30080, 30053, None]


def test_update_changing_a_services_type_keeps_nothing() -> None:
    old = _svc("ClusterIP", clusterIP="10.96.0.7")
    new = _svc("ExternalName", externalName="example.com")
    SERVICE.strategy.prepare_for_update(new, old)
    assert "clusterIP" not in new["spec"]


def test_update_keeps_a_jobs_generated_selector_unless_manual() -> None:
    sel = {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}}
    new = obj("Job", spec={})
    JOB.strategy.prepare_for_update(new, obj("Job", spec={"selector": sel}))
    assert new["spec"]["selector"] == sel
    manual = obj("Job", spec={"manualSelector": True})
    JOB.strategy.prepare_for_update(manual, obj("Job", spec={"selector": sel}))
    assert "selector" not in manual["spec"]


def test_generic_update_keeps_nothing() -> None:
    new = obj("ConfigMap", data={"a": "1"})
    GENERIC.prepare_for_update(new, obj("ConfigMap", data={"a": "0", "b": "2"}))
    assert new["data"] == {"a": "1"}


# ---- default and canonicalize ------------------------------------------------------------


def test_default_clears_namespace_on_cluster_scoped_kinds_and_survives_its_defaulter() -> None:
    sc = {"kind": "StorageClass", "metadata": {"name": "fast", "namespace": "oops"}, "provisioner": "p"}
    STORAGECLASS.strategy.default(STORAGECLASS, sc)
    assert "namespace" not in sc["metadata"] and sc["reclaimPolicy"] == "Delete"

    def broken(o: dict[str, Any]) -> None:
        raise KeyError("spec")

    s = Strategy(defaulter=broken)
    o = obj("Thing")
    s.default(POD, o)  # malformed input is left for validation, never a crash
    assert o == obj("Thing")


def test_canonicalize_adds_missing_zero_status_fields_only() -> None:
    o = obj("ReplicaSet", status={"replicas": 3})
    REPLICASET.strategy.canonicalize(o)
    assert o["status"] == {"replicas": 3}
    bare = obj("ReplicaSet")
    REPLICASET.strategy.canonicalize(bare)
    assert bare["status"] == {"replicas": 0}
    plain = obj("ConfigMap")
    CONFIGMAP.strategy.canonicalize(plain)
    assert "status" not in plain


# ---- validate and validate_update --------------------------------------------------------


def test_generic_validation_checks_object_metadata_by_scope() -> None:
    slices = must_by_kind("discovery.k8s.io/v1", "EndpointSlice")
    bad = {"metadata": {"name": "Not_Valid", "namespace": "Bad_NS"}}
    errs = [e.detail() for e in GENERIC.validate(slices, bad)]
    assert errs[0].startswith('metadata.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain')
    assert errs[1].startswith('metadata.namespace: Invalid value: "Bad_NS": a lowercase RFC 1123 label')
    assert GENERIC.validate(slices, {"metadata": {"name": "ok", "namespace": "a"}}) == []


def test_update_rule_is_the_kinds_own() -> None:
    old = obj("ConfigMap", data={"a": "1"}, immutable=True)
    new = obj("ConfigMap", data={"a": "2"}, immutable=True)
    assert [e.field for e in CONFIGMAP.strategy.validate_update(new, old)] == ["data"]
    assert GENERIC.validate_update(new, old) == []


# ---- deletion policy ---------------------------------------------------------------------


@pytest.mark.parametrize("p, options, grace", [
    (pod(), {}, 0),  # never scheduled
    (pod(node="n1"), {}, 30),
    (pod(node="n1", grace=5), {}, 5),
    (pod(node="n1", grace=5), {"gracePeriodSeconds": 0}, 0),
    (pod(node="n1", phase="Succeeded"), {}, 0),
])
def test_pod_grace_period(p: dict[str, Any], options: dict[str, Any], grace: int) -> None:
    assert POD.strategy.grace_period(p, options) == grace


def test_pod_mark_for_deletion_sets_timestamp_and_grace() -> None:
    marked = POD.strategy.mark_for_deletion(pod(node="n1", grace=7), [], {})
    assert marked is not None
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 7 and marked["metadata"]["deletionTimestamp"]
    assert POD.strategy.holds_deletion(marked)
    assert POD.strategy.mark_for_deletion(pod(), [], {}) is None  # unscheduled: goes at once


def test_a_shorter_grace_period_moves_the_deadline_up_a_longer_one_does_not() -> None:
    first = POD.strategy.mark_for_deletion(pod(node="n1", grace=60), [], {})
    assert first is not None
    shorter = POD.strategy.mark_for_deletion(first, [], {"gracePeriodSeconds": 1})
    assert shorter is not None and shorter["metadata"]["deletionGracePeriodSeconds"] == 1
    longer = POD.strategy.mark_for_deletion(shorter, [], {"gracePeriodSeconds": 90})
    assert longer is not None and longer["metadata"]["deletionGracePeriodSeconds"] == 1


def test_generic_deletion_waits_only_for_finalizers() -> None:
    cm = obj("ConfigMap")
    assert GENERIC.mark_for_deletion(cm, [], {}) is None
    marked = GENERIC.mark_for_deletion(cm, ["orphan"], {})
    assert marked is not None and marked["metadata"]["finalizers"] == ["orphan"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert "deletionTimestamp" not in cm["metadata"]  # the stored object is not touched
    assert not GENERIC.holds_deletion(marked)


def test_namespace_turns_terminating_while_its_finalizer_works() -> None:
    ns = {"kind": "Namespace", "metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]},
          "status": {"phase": "Active"}}
    marked = NAMESPACE.strategy.mark_for_deletion(ns, [], {})
    assert marked is not None and marked["status"]["phase"] == "Terminating"
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert NAMESPACE.strategy.holds_deletion(marked)
    emptied = dict(marked, spec={})
    assert not NAMESPACE.strategy.holds_deletion(emptied)
    assert NAMESPACE.strategy.mark_for_deletion({"metadata": {"name": "b"}, "spec": {}}, [], {}) is None


def test_deletes_that_answer_with_the_object_are_upstreams() -> None:
    assert {r.plural for r in RESOURCES if r.strategy.return_deleted_object} == {
        "pods", "services", "persistentvolumeclaims", "persistentvolumes", "serviceaccounts", "namespaces",
        "storageclasses", "resourcequotas", "podtemplates", "csidrivers"}


def test_pod_warnings_name_deprecated_fields_as_upstream_does() -> None:
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "failure-domain.beta.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}]}}},
            "volumes": [{"name": "v", "gitRepo": {"repository": "r"}}],
            "terminationGracePeriodSeconds": -5,
            "containers": [{"name": "c", "image": "x", "resources": {"requests": {"memory": "0.5"}}}]}
    pod = {"metadata": {"annotations": {"scheduler.alpha.kubernetes.io/critical-pod": ""}}, "spec": spec}
    assert for_pod(pod) == [  # upstream's order; quantities shown canonical, as upstream's String()
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
        ".matchExpressions[0].key: failure-domain.beta.kubernetes.io/zone is deprecated since v1.17; "
        'use "topology.kubernetes.io/zone" instead',
        "metadata.annotations[scheduler.alpha.kubernetes.io/critical-pod]: non-functional in v1.16+; "
        'use the "priorityClassName" field instead',
        "spec.volumes[0].gitRepo: deprecated in v1.11",
        'spec.containers[0].resources.requests[memory]: fractional byte value "500m" is invalid, must be an integer',
        "spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1",
    ]
    job = {"spec": {"template": {"spec": {"nodeSelector": {"beta.kubernetes.io/arch": "amd64"}}}}}
    assert for_template("spec", "template")(job) == [
        'spec.template.spec.nodeSelector[beta.kubernetes.io/arch]: deprecated since v1.14; use "kubernetes.io/arch" '
        "instead"]
    assert for_pod({"spec": "not an object"}) == []


def test_more_of_upstreams_pod_warnings() -> None:
    spec = {
        "affinity": {
            "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [
                    {"key": "beta.kubernetes.io/os", "operator": "Exists"}]}}]},
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "h"}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "failure-domain.beta.kubernetes.io/region",
                                       "whenUnsatisfiable": "DoNotSchedule"}],
        "hostAliases": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.1"}],
        "imagePullSecrets": [{"name": "a"}, {"name": "a"}, {}],
        "volumes": [{"name": "cm", "configMap": {"name": "conf", "items": [{"key": "a", "path": "x"},
                                                                           {"key": "b", "path": "x/y"}]}}],
        "containers": [{"name": "c", "image": "x",
                        "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"},
                                {"name": "A", "value": "$(A)3"}],
                        "ports": [{"containerPort": 80, "protocol": "TCP", "hostIP": "10.0.0.1"}]},
                       {"name": "d", "image": "x", "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
    }
    meta = {"annotations": {"security.alpha.kubernetes.io/sysctls": "x",
                            "container.seccomp.security.alpha.kubernetes.io/c": "runtime/default"}}
    assert for_pod({"metadata": meta, "spec": spec}) == [
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0]"
        '.key: beta.kubernetes.io/os is deprecated since v1.14; use "kubernetes.io/os" instead',
        "spec.topologySpreadConstraints[0].topologyKey: failure-domain.beta.kubernetes.io/region is deprecated since "
        'v1.17; use "topology.kubernetes.io/region" instead',
        "spec.topologySpreadConstraints[0].labelSelector: a null labelSelector results in matching no pod",
        'metadata.annotations[security.alpha.kubernetes.io/sysctls]: non-functional in v1.11+; use the "sysctls" '
        "field instead",
        'volume "cm" (ConfigMap "conf"): overlapping paths: "x/y" with "x"',
        'spec.hostAliases[1].ip: duplicate ip "10.0.0.1"',
        'spec.imagePullSecrets[1].name: duplicate name "a"',
        'spec.imagePullSecrets[2].name: invalid empty name ""',
        "metadata.annotations[container.seccomp.security.alpha.kubernetes.io/c]: non-functional in v1.27+; "
        'use the "seccompProfile" field instead',
        'spec.containers[0].env[1]: hides previous definition of "A", which may be dropped when using apply',
        "spec.containers[0].ports[0]: hostIP set without hostPort: "
        "{Name: HostPort:0 ContainerPort:80 Protocol:TCP HostIP:10.0.0.1}",
        "spec.containers[1].ports[0]: overlapping port definition with spec.containers[0].ports[0]",
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector: "
        "a null labelSelector results in matching no pod",
    ]
