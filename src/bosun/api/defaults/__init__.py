"""Defaults per kind, applied in place as Kubernetes' defaulting does.

The API server calls :func:`apply_defaults` on every create and update body (after patches)
before validation, so stored objects always carry the values users see from
``kubectl get -o yaml`` on a real cluster. Garbage is left alone for validation to report.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bosun.api.defaults import core, networking, storage, workloads
from bosun.api.defaults.pod import default_pod
from bosun.api.registry import Resource

Defaulter = Callable[[dict[str, Any]], None]

DEFAULTERS: dict[str, Defaulter] = {
    "Pod": default_pod,
    "Service": core.default_service,
    "Secret": core.default_secret,
    "Namespace": core.default_namespace,
    "PersistentVolumeClaim": core.default_pvc,
    "PersistentVolume": core.default_pv,
    "Node": core.default_node,
    "Endpoints": core.default_endpoints,
    "Deployment": workloads.default_deployment,
    "ReplicaSet": workloads.default_replicaset,
    "StatefulSet": workloads.default_statefulset,
    "DaemonSet": workloads.default_daemonset,
    "Job": workloads.default_job,
    "CronJob": workloads.default_cronjob,
    "HorizontalPodAutoscaler": core.default_hpa,
    "NetworkPolicy": networking.default_network_policy,
    "PriorityClass": core.default_priority_class,
    "StorageClass": storage.default_storage_class,
}


def apply_defaults(resource: Resource, obj: dict[str, Any]) -> None:
    """Fill what the user left out. Never raises: malformed parts are skipped, not fixed."""
    if not isinstance(obj, dict):
        return
    meta = obj.get("metadata")
    if not resource.namespaced and isinstance(meta, dict):
        meta.pop("namespace", None)  # Kubernetes clears it on cluster-scoped objects
    fn = DEFAULTERS.get(resource.kind)
    if fn is None:
        return
    try:
        fn(obj)
    except Exception:
        # Only reachable with malformed input; validation reports it.
        return


def apply_update_defaults(resource: Resource, new: dict[str, Any], old: dict[str, Any]) -> None:
    """Keep values the server allocated when an update body leaves them out.

    A ``kubectl replace`` of a Service manifest carries no clusterIP or nodePorts, and one of a
    Job carries no generated selector; Kubernetes copies them from the stored object instead
    of treating the omission as a change. Call before :func:`apply_defaults` and validation.
    """
    if not isinstance(new, dict) or not isinstance(old, dict):
        return
    try:
        _keep_allocated(resource, new, old)
    except Exception:
        return  # malformed input: validation reports it


def _keep_allocated(resource: Resource, new: dict[str, Any], old: dict[str, Any]) -> None:
    ns, os_ = new.get("spec"), old.get("spec")
    if not isinstance(ns, dict) or not isinstance(os_, dict):
        return
    if resource.kind == "Service" and ns.get("type", "ClusterIP") == os_.get("type", "ClusterIP"):
        for f in ("clusterIP", "clusterIPs", "healthCheckNodePort"):
            if ns.get(f) in (None, "", []) and os_.get(f) not in (None, "", []):
                ns[f] = copy.deepcopy(os_[f])
        old_list, new_list = os_.get("ports"), ns.get("ports")
        if not isinstance(old_list, list) or not isinstance(new_list, list):
            return
        old_ports = [p for p in old_list if isinstance(p, dict)]
        for port in new_list:
            if not isinstance(port, dict) or port.get("nodePort"):
                continue
            for op in old_ports:
                if op.get("nodePort") and (op.get("port"), op.get("protocol", "TCP")) == (
                        port.get("port"), port.get("protocol", "TCP")):
                    port["nodePort"] = op["nodePort"]
                    break
    elif resource.kind == "Job" and ns.get("selector") is None and ns.get("manualSelector") is not True:
        if os_.get("selector") is not None:
            ns["selector"] = copy.deepcopy(os_["selector"])


__all__ = ["apply_defaults", "apply_update_defaults"]
