"""Pods for harness tests: ``host``-image pods pinned to a node, created and awaited with kubectl."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.harness.cluster import HarnessError, NetCluster

Obj = dict[str, Any]


def pod(name: str, node: str, command: list[str], *, namespace: str = "default",
        labels: dict[str, str] | None = None, ports: list[int] | None = None) -> Obj:
    """A one-container pod on node ``node`` (spec.nodeName) running ``command`` with the
    ``host`` image (the machine's own binaries, busybox included)."""
    container: Obj = {"name": "main", "image": "host", "command": command}
    if ports:
        container["ports"] = [{"containerPort": p} for p in ports]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
            "spec": {"nodeName": node, "restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
                     "containers": [container]}}


def running(cluster: NetCluster, namespace: str, names: list[str]) -> dict[str, Obj]:
    """The pods that are Running with a pod IP, by name."""
    items = cluster.kubectl_json("get", "pods", "-n", namespace)["items"]
    return {p["metadata"]["name"]: p for p in items if p["metadata"]["name"] in names
            and p.get("status", {}).get("phase") == "Running" and p["status"].get("podIP")}


def run_pods(cluster: NetCluster, pods: list[Obj], timeout: float = 60) -> dict[str, Obj]:
    """Create ``pods`` (all in one namespace) and return them, by name, once each is Running
    with a pod IP; raises HarnessError with their last status otherwise."""
    namespace = pods[0]["metadata"]["namespace"]
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": pods})
    done = cluster.kubectl("apply", "-f", "-", input=manifest)
    if done.returncode != 0:
        raise HarnessError(f"kubectl apply: {done.stderr.strip()}")
    names = [p["metadata"]["name"] for p in pods]
    deadline = time.monotonic() + timeout
    while True:
        ready = running(cluster, namespace, names)
        if len(ready) == len(names):
            return ready
        if time.monotonic() > deadline:
            statuses = {p["metadata"]["name"]: p.get("status") for p in
                        cluster.kubectl_json("get", "pods", "-n", namespace)["items"] if p["metadata"]["name"] in names}
            raise HarnessError(f"pods not Running within {timeout}s: {json.dumps(statuses, indent=1)[:4000]}")
        time.sleep(0.3)
