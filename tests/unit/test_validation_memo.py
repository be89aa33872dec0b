"""Containers found valid once are not checked again, yet every error is still reported:
a container that was valid in one pod can be wrong in another (a port name taken by an
earlier container, a volume the pod does not have)."""

from __future__ import annotations

import copy
from typing import Any

from bosun.api.registry import Resource, by_kind
from bosun.api.validation import validate

_pods = by_kind("v1", "Pod")
assert _pods is not None
PODS: Resource = _pods


def container(name: str, port_name: str = "http") -> dict[str, Any]:
    return {
        "name": name, "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
        "terminationMessagePolicy": "File",
        "ports": [{"name": port_name, "containerPort": 8080, "protocol": "TCP"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }


def pod(*containers: dict[str, Any], volumes: tuple[str, ...] = ("data",)) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": list(containers), "volumes": [{"name": v, "emptyDir": {}} for v in volumes],
                 "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
    }


def messages(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in validate(PODS, copy.deepcopy(obj))]


def test_valid_container_stays_valid_when_seen_again() -> None:
    ok = pod(container("web"))
    assert messages(ok) == []
    assert messages(ok) == []


def test_port_name_taken_by_an_earlier_container_is_reported_for_a_known_container() -> None:
    assert messages(pod(container("web"))) == []
    assert messages(pod(container("sidecar"))) == []
    # Each container alone was valid; together their port names collide.
    errs = messages(pod(container("web"), container("sidecar")))
    assert errs == [("spec.containers[1].ports[0].name", "FieldValueDuplicate")]


def test_known_container_in_a_pod_without_its_volume_is_refused() -> None:
    assert messages(pod(container("web"))) == []
    errs = messages(pod(container("web"), volumes=("other",)))
    assert errs == [("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound")]


def test_invalid_container_reports_the_same_errors_every_time() -> None:
    bad = container("Bad_Name")
    first = messages(pod(bad))
    assert first and first == messages(pod(bad))
    # At another index the same container's errors carry that index.
    second = messages(pod(container("web", "other"), bad))
    assert [f for f, _ in second] == [f.replace("containers[0]", "containers[1]") for f, _ in first]
