"""v1 ReplicationControllers, as old manifests and tutorials use them, through real kubectl
against the whole control plane: defaults from the template, pods kept at the count,
`kubectl scale`, the table, validation, and removal of the pods with the controller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer
from tests.e2e.helpers import wait_until
from tests.e2e.test_kubectl import Kubectl

RC = """
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 3
  template:
    metadata:
      labels: {app: legacy}
    spec:
      containers:
      - name: c
        image: busybox:1.36
        command: [sleep, "3600"]
"""


@pytest.fixture
def kubectl(cluster: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    k = Kubectl(cluster.kubeconfig, namespace, tmp_path / "kubecache")
    k("create", "namespace", namespace, ns=False)
    try:
        yield k
    finally:
        k("delete", "namespace", namespace, "--wait=false", ns=False, check=False)


def owned_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    pods = kubectl.json("get", "pods")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and any(r["kind"] == "ReplicationController" and r["name"] == "legacy"
                    for r in p["metadata"].get("ownerReferences") or [])]


def test_replication_controller_keeps_its_pods_and_scales(kubectl: Kubectl) -> None:
    assert "replicationcontroller/legacy created" in kubectl("apply", "-f", "-", input=RC).stdout
    rc = kubectl.json("get", "rc", "legacy")
    # Upstream's defaults: selector and labels from the template's labels.
    assert rc["spec"]["selector"] == {"app": "legacy"}
    assert rc["metadata"]["labels"] == {"app": "legacy"}
    wait_until(lambda: len(owned_pods(kubectl)) == 3, 30, "3 pods of the replication controller")
    wait_until(lambda: kubectl.json("get", "rc", "legacy").get("status", {}).get("replicas") == 3, 30,
               "status.replicas 3")
    table = kubectl("get", "rc", "legacy", "-o", "wide").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert table[1].split()[:3] == ["legacy", "3", "3"] and table[1].split()[-1] == "app=legacy"

    assert "scaled" in kubectl("scale", "rc", "legacy", "--replicas=1").stdout
    wait_until(lambda: len(owned_pods(kubectl)) == 1, 30, "scaled down to 1 pod")
    # A pod deleted by hand is replaced.
    kubectl("delete", "pod", owned_pods(kubectl)[0]["metadata"]["name"], "--wait=false")
    wait_until(lambda: len(owned_pods(kubectl)) == 1 and
               not any(p["metadata"].get("deletionTimestamp") for p in owned_pods(kubectl)), 30, "replacement")

    kubectl("delete", "rc", "legacy")
    wait_until(lambda: not owned_pods(kubectl), 30, "pods removed with their controller")


def test_replication_controller_whose_selector_misses_its_template_is_refused(kubectl: Kubectl) -> None:
    bad = RC.replace("replicas: 3", "replicas: 3\n  selector: {app: other}")
    p = kubectl("apply", "-f", "-", input=bad, check=False)
    assert p.returncode != 0
    assert ('spec.template.metadata.labels: Invalid value: map[string]string{"app":"legacy"}: '
            "selector does not match labels in spec.template") in p.stderr
    assert "NotFound" in kubectl("get", "rc", "legacy", check=False).stderr
