"""Defaults match what ``kubectl get -o yaml`` shows on a real Kubernetes cluster."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from bosun.api.defaults import apply_defaults, apply_update_defaults
from bosun.api.defaults.pod import image_pull_policy
from bosun.api.registry import RESOURCES, Resource, by_kind
from bosun.api.validation import validate_unchecked


def defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    r = by_kind(obj["apiVersion"], obj["kind"])
    assert r is not None
    obj = copy.deepcopy(obj)
    apply_defaults(r, obj)
    assert validate_unchecked(r, obj) == [], "defaulted objects must stay valid"
    return obj


NGINX = {"name": "nginx", "image": "nginx"}
CONTAINER_DEFAULTS = {
    "imagePullPolicy": "Always",
    "resources": {},
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}
TEMPLATE_SPEC_DEFAULTS = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": labels or {"app": "web"}}, "spec": {"containers": [dict(NGINX)], **spec}}


def test_pod_defaults() -> None:
    pod = defaulted({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
                     "spec": {"containers": [dict(NGINX)]}})
    assert pod["spec"] == {
        "containers": [{**NGINX, **CONTAINER_DEFAULTS}],
        **TEMPLATE_SPEC_DEFAULTS,
        "enableServiceLinks": True,
        "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority",
    }


def test_container_port_probe_and_volume_defaults() -> None:
    pod = defaulted({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                        "livenessProbe": {"httpGet": {"port": 80}},
                        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 3},
                        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}}],
        "volumes": [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "sec", "secret": {"secretName": "s"}},
                    {"name": "scratch"}]}})
    ctr = pod["spec"]["containers"][0]
    assert ctr["imagePullPolicy"] == "IfNotPresent"
    assert ctr["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert ctr["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                    "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert ctr["readinessProbe"]["periodSeconds"] == 3
    assert ctr["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "metadata.name", "apiVersion": "v1"}
    # Requests default to limits, for the resources that have no request.
    assert ctr["resources"]["requests"] == {"cpu": "100m", "memory": "1Gi"}
    assert pod["spec"]["volumes"] == [
        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 420}},
        {"name": "scratch", "emptyDir": {}},
    ]


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
    ("localhost:5000/app", "Always"), ("localhost:5000/app:v1", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"), ("registry.io/team/app:latest", "Always"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_explicit_values_are_kept() -> None:
    pod = defaulted({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}]}})
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 0
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_deployment_defaults() -> None:
    dep = defaulted({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                     "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}})
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    # Templates get pod-spec defaults but not the Pod-only ones (priority, service links).
    assert spec["template"]["spec"] == {"containers": [{**NGINX, **CONTAINER_DEFAULTS}], **TEMPLATE_SPEC_DEFAULTS}


def test_recreate_strategy_gets_no_rolling_update() -> None:
    dep = defaulted({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                     "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(),
                              "strategy": {"type": "Recreate"}}})
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_replicaset_statefulset_daemonset_defaults() -> None:
    base = {"selector": {"matchLabels": {"app": "web"}}, "template": template()}
    rs = defaulted({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"}, "spec": base})
    assert rs["spec"]["replicas"] == 1
    sts = defaulted({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {
        **base, "serviceName": "s", "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert spec["volumeClaimTemplates"][0]["status"] == {"phase": "Pending"}
    ds = defaulted({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}, "spec": base})
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert "replicas" not in ds["spec"]


def test_job_defaults_and_generated_selector() -> None:
    job = defaulted({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "uid": "u1"},
                     "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [dict(NGINX)]}}}})
    spec = job["spec"]
    assert {k: spec[k] for k in ("parallelism", "completions", "backoffLimit", "completionMode", "suspend",
                                 "manualSelector", "podReplacementPolicy")} == {
        "parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
        "suspend": False, "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed"}
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "u1", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u1", "job-name": "pi"}
    assert job["metadata"]["labels"] == spec["template"]["metadata"]["labels"]


def test_job_completions_only_defaulted_when_both_unset() -> None:
    job = defaulted({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
                     "spec": {"parallelism": 3,
                              "template": {"spec": {"restartPolicy": "Never", "containers": [dict(NGINX)]}}}})
    assert job["spec"]["parallelism"] == 3
    assert "completions" not in job["spec"]


def test_cronjob_defaults() -> None:
    cj = defaulted({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}, "spec": {
        "schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [dict(NGINX)]}}}}}})
    spec = cj["spec"]
    assert {k: spec[k] for k in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit",
                                 "failedJobsHistoryLimit")} == {
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1}
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_service_defaults() -> None:
    svc = defaulted({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert svc["spec"] == {
        "selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}
    np = defaulted({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": "http"}]}})
    assert np["spec"]["ports"][0]["targetPort"] == "http"
    assert np["spec"]["externalTrafficPolicy"] == "Cluster"
    assert np["spec"]["allocateLoadBalancerNodePorts"] is True


def test_secret_namespace_pvc_hpa_defaults() -> None:
    sec = defaulted({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                     "stringData": {"password": "hunter2"}})
    assert sec["type"] == "Opaque"
    assert sec["data"] == {"password": base64.b64encode(b"hunter2").decode()}
    assert "stringData" not in sec
    ns = defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    pvc = defaulted({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert pvc["spec"]["volumeMode"] == "Filesystem"
    assert pvc["status"] == {"phase": "Pending"}
    hpa = defaulted({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
                     "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"},
                              "maxReplicas": 4}})
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


def test_update_keeps_allocated_service_values() -> None:
    r = by_kind("v1", "Service")
    assert r is not None
    old = {"spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
                    "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}}
    new: dict[str, Any] = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}
    apply_update_defaults(r, new, old)
    assert new["spec"]["clusterIP"] == "10.96.0.7"
    assert new["spec"]["clusterIPs"] == ["10.96.0.7"]
    assert new["spec"]["ports"] == [{"port": 80, "nodePort": 30080}, {"port": 81}]


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
@pytest.mark.parametrize("junk", [None, [], "x", 1, {"spec": []}, {"spec": {"template": [], "ports": 3}},
                                  {"metadata": "x", "spec": {"containers": [None, 1]}}])
def test_defaults_never_raise(r: Resource, junk: Any) -> None:
    obj = copy.deepcopy(junk)
    apply_defaults(r, obj)
    apply_update_defaults(r, obj, copy.deepcopy(junk))
