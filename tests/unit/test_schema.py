"""Unknown-field and wrong-type checks on realistic manifests, with the apiserver's wording."""

from __future__ import annotations

from typing import Any

from bosun.api import schema
from bosun.api.registry import by_kind

DEPLOYMENT = by_kind("apps/v1", "Deployment")
POD = by_kind("v1", "Pod")
SECRET = by_kind("v1", "Secret")
assert DEPLOYMENT and POD and SECRET


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"cpu": 1, "memory": "128Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                }]},
            },
        },
        "status": {"replicas": 3, "readyReplicas": 3, "conditions": [
            {"type": "Available", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"}]},
    }


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u", "resourceVersion": "7",
                     "labels": {"a": "b"}, "creationTimestamp": "2024-01-01T00:00:00Z",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "rs", "uid": "x", "controller": True}]},
        "spec": {
            "containers": [{
                "name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 3600"],
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"containerPort": 8080}],
                "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}},
                "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 10},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
            "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 30}],
            "nodeName": "node-1", "terminationGracePeriodSeconds": 30,
        },
        "status": {"phase": "Running", "podIP": "10.1.0.5",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                          "image": "busybox", "imageID": "sha256:1",
                                          "state": {"running": {"startedAt": "2024-01-01T00:00:01Z"}}}]},
    }


def test_valid_manifests_pass() -> None:
    assert schema.check(DEPLOYMENT, _deployment()) == ([], [])
    assert schema.check(POD, _pod()) == ([], [])


def test_unknown_fields_are_reported_with_paths_and_message() -> None:
    d = _deployment()
    d["spec"]["replicaz"] = 3
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    d["metadata"]["labelz"] = {}
    unknown = sorted(schema.unknown_fields(DEPLOYMENT, d))  # document order otherwise
    assert unknown == ["metadata.labelz", "spec.replicaz",
                       "spec.template.spec.containers[0].imagePullPolicyy"]
    assert schema.strict_error_message(DEPLOYMENT, ["spec.replicaz"]) == (
        'Deployment in version "v1" cannot be handled as a Deployment: '
        'strict decoding error: unknown field "spec.replicaz"')


def test_field_names_are_case_sensitive_like_kubernetes() -> None:
    d = _deployment()
    d["spec"]["Replicas"] = 2
    assert schema.unknown_fields(DEPLOYMENT, d) == ["spec.Replicas"]


def test_type_errors_use_go_decode_wording() -> None:
    d = _deployment()
    d["spec"]["replicas"] = "three"
    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    d["metadata"]["labels"]["tier"] = 1
    errors = schema.type_errors(DEPLOYMENT, d)
    assert errors == [
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        "json: cannot unmarshal string into Go struct field "
        "ContainerPort.spec.template.spec.containers.ports.containerPort of type int32",
    ]


def test_wrong_container_shapes() -> None:
    p = _pod()
    p["spec"]["containers"] = {"name": "c"}
    assert schema.type_errors(POD, p) == [
        "json: cannot unmarshal object into Go struct field PodSpec.spec.containers "
        "of type []v1.Container"]
    p = _pod()
    p["spec"]["containers"][0]["command"] = ["sleep", 10]
    p["spec"]["replicas"] = 1
    unknown, errors = schema.check(POD, p)
    assert unknown == ["spec.replicas"]
    assert errors == ["json: cannot unmarshal number into Go struct field "
                      "Container.spec.containers.command of type string"]


def test_quantities_and_int_or_string_accept_numbers_and_strings() -> None:
    p = _pod()
    p["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 2, "memory": 1.5e9}}
    p["spec"]["containers"][0]["livenessProbe"]["tcpSocket"]["port"] = "http"
    assert schema.type_errors(POD, p) == []
    p["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1Gb"}}
    assert schema.type_errors(POD, p) == [
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]
    p["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1iG"}}
    assert schema.type_errors(POD, p) == ["unable to parse quantity's suffix"]
    p["spec"]["containers"][0]["resources"] = {}
    p["spec"]["containers"][0]["livenessProbe"]["tcpSocket"]["port"] = True
    assert schema.type_errors(POD, p) == [
        "json: cannot unmarshal bool into Go value of type int32"]


def test_nulls_and_empty_values_are_accepted() -> None:
    p = _pod()
    p["spec"]["nodeName"] = None
    p["metadata"]["labels"] = None
    assert schema.check(POD, p) == ([], [])


def test_secret_data_must_be_base64() -> None:
    s = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
         "data": {"ok": "aGVsbG8=", "bad": "not base64!"}, "type": "Opaque"}
    assert schema.type_errors(SECRET, s) == ["illegal base64 data at input byte 0"]


def test_prune_drops_unknown_fields_in_place() -> None:
    d = _deployment()
    d["spec"]["replicaz"] = 3
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    want = _deployment()
    assert sorted(schema.prune_unknown(DEPLOYMENT, d)) == [
        "spec.replicaz", "spec.template.spec.containers[0].imagePullPolicyy"]
    assert d == want


def test_subresource_bodies() -> None:
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
             "spec": {"replicas": 5, "replicaz": 1}}
    assert schema.check_type("V1Scale", scale) == (["spec.replicaz"], [])


