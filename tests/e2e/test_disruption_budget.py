"""PodDisruptionBudgets on a real node (`bosun up`), driven by real kubectl: the budget's
status counts the pods, and `kubectl drain` evicts only what the budget allows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.e2e.helpers import Kubectl, bosun_up, wait_until

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: host, command: [sleep, "600"]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"""


def get(kubectl: Kubectl, *args: str) -> Any:
    p = kubectl("get", *args, "-o", "json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def budget(kubectl: Kubectl) -> dict[str, Any]:
    return dict(get(kubectl, "pdb", "web").get("status") or {})


def live_pods(kubectl: Kubectl) -> list[str]:
    return [p["metadata"]["name"] for p in get(kubectl, "pods", "-l", "app=web")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def test_drain_evicts_only_what_the_disruption_budget_allows(tmp_path: Path) -> None:
    with bosun_up(tmp_path) as up:
        kubectl = up.kubectl
        assert kubectl("apply", "-f", "-", stdin=APP).returncode == 0
        wait_until(lambda: budget(kubectl).get("currentHealthy") == 2, 60, "2 healthy pods counted")
        status = budget(kubectl)
        assert (status["desiredHealthy"], status["expectedPods"], status["disruptionsAllowed"]) == (2, 2, 0)
        assert any(c["type"] == "DisruptionAllowed" and c["status"] == "False" and c["reason"] == "InsufficientPods"
                   for c in status["conditions"])
        table = kubectl("get", "pdb", "web").stdout.splitlines()
        assert table[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
        assert table[1].split()[:4] == ["web", "2", "N/A", "0"]

        node = get(kubectl, "nodes")["items"][0]["metadata"]["name"]
        before = sorted(live_pods(kubectl))
        drain = kubectl("drain", node, "--ignore-daemonsets", "--timeout=4s")
        assert drain.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget" in drain.stderr
        assert sorted(live_pods(kubectl)) == before, "a pod the budget protects was evicted"

        # One disruption allowed: the drain evicts one pod (its replacement cannot start on the
        # cordoned node, so the budget then holds the second one back).
        patch = '{"spec": {"minAvailable": null, "maxUnavailable": 1}}'
        assert kubectl("patch", "pdb", "web", "--type=merge", "-p", patch).returncode == 0
        wait_until(lambda: budget(kubectl).get("disruptionsAllowed") == 1, 30, "one disruption allowed")
        assert budget(kubectl)["expectedPods"] == 2  # from the Deployment's replicas
        drain = kubectl("drain", node, "--ignore-daemonsets", "--timeout=6s")
        assert drain.returncode != 0
        assert drain.stdout.count("evicted") == 1, drain.stdout
        deadline = time.time() + 30
        while time.time() < deadline and len(set(before) & set(live_pods(kubectl))) != 1:
            time.sleep(0.3)
        assert len(set(before) & set(live_pods(kubectl))) == 1
        kubectl("uncordon", node)
