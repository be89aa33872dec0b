"""Defaults of core/v1 kinds and of the smaller groups (Service, Secret, Namespace, PVC, HPA...)."""

from __future__ import annotations

import base64
from typing import Any

from bosun.api.defaults.pod import _dicts, _obj, _set, default_template


def default_service(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is None:
        return
    _set(spec, "type", "ClusterIP")
    _set(spec, "sessionAffinity", "None")
    stype = spec["type"]
    for port in _dicts(spec, "ports"):
        _set(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = spec.get("sessionAffinityConfig")
        if cfg is None:
            cfg = spec["sessionAffinityConfig"] = {}
        if isinstance(cfg, dict):
            cip = cfg.get("clientIP")
            if cip is None:
                cip = cfg["clientIP"] = {}
            if isinstance(cip, dict):
                _set(cip, "timeoutSeconds", 10800)
    if stype in ("NodePort", "LoadBalancer"):
        _set(spec, "externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        _set(spec, "allocateLoadBalancerNodePorts", True)
    if stype != "ExternalName":
        _set(spec, "internalTrafficPolicy", "Cluster")
        _set(spec, "ipFamilyPolicy", "SingleStack")
        _set(spec, "ipFamilies", ["IPv4"])
        cip = spec.get("clusterIP")
        if isinstance(cip, str) and cip and spec.get("clusterIPs") is None:
            spec["clusterIPs"] = [cip]
        ips = spec.get("clusterIPs")
        if spec.get("clusterIP") is None and isinstance(ips, list) and ips and isinstance(ips[0], str):
            spec["clusterIP"] = ips[0]


def default_secret(obj: dict[str, Any]) -> None:
    _set(obj, "type", "Opaque")
    string_data = obj.get("stringData")
    if isinstance(string_data, dict) and all(isinstance(v, str) for v in string_data.values()):
        # Write-only field: Kubernetes folds it into data and never stores it.
        data = obj.get("data")
        if data is None:
            data = obj["data"] = {}
        if isinstance(data, dict):
            for k, v in string_data.items():
                data[k] = base64.b64encode(v.encode()).decode()
            del obj["stringData"]


def default_namespace(obj: dict[str, Any]) -> None:
    meta = _obj(obj, "metadata")
    if meta is not None and isinstance(meta.get("name"), str) and meta["name"]:
        labels = meta.get("labels")
        if labels is None:
            labels = meta["labels"] = {}
        if isinstance(labels, dict):
            labels["kubernetes.io/metadata.name"] = meta["name"]
    spec = obj.get("spec")
    if spec is None:
        spec = obj["spec"] = {}
    if isinstance(spec, dict):
        _set(spec, "finalizers", ["kubernetes"])
    status = obj.get("status")
    if status is None:
        status = obj["status"] = {}
    if isinstance(status, dict):
        _set(status, "phase", "Active")


def default_pvc(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is not None:
        _set(spec, "volumeMode", "Filesystem")
    status = obj.get("status")
    if status is None:
        status = obj["status"] = {}
    if isinstance(status, dict):
        _set(status, "phase", "Pending")


def default_pv(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is not None:
        _set(spec, "persistentVolumeReclaimPolicy", "Retain")
        _set(spec, "volumeMode", "Filesystem")
        hp = _obj(spec, "hostPath")
        if hp is not None:
            _set(hp, "type", "")
    status = obj.get("status")
    if status is None:
        status = obj["status"] = {}
    if isinstance(status, dict):
        _set(status, "phase", "Pending")


def default_node(obj: dict[str, Any]) -> None:
    status = _obj(obj, "status")
    if status is not None and isinstance(status.get("capacity"), dict) and status.get("allocatable") is None:
        status["allocatable"] = dict(status["capacity"])


def default_endpoints(obj: dict[str, Any]) -> None:
    for subset in _dicts(obj, "subsets"):
        for port in _dicts(subset, "ports"):
            _set(port, "protocol", "TCP")


def default_hpa(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is None:
        return
    _set(spec, "minReplicas", 1)
    if spec.get("metrics") is None:
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = _obj(spec, "behavior")
    if behavior is None:
        return
    up = behavior.get("scaleUp")
    if up is None:
        up = behavior["scaleUp"] = {}
    if isinstance(up, dict):
        _set(up, "stabilizationWindowSeconds", 0)
        _set(up, "selectPolicy", "Max")
        _set(up, "policies", [{"type": "Pods", "value": 4, "periodSeconds": 15},
                              {"type": "Percent", "value": 100, "periodSeconds": 15}])
    down = behavior.get("scaleDown")
    if down is None:
        down = behavior["scaleDown"] = {}
    if isinstance(down, dict):
        _set(down, "stabilizationWindowSeconds", 300)
        _set(down, "selectPolicy", "Max")
        _set(down, "policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])


def default_priority_class(obj: dict[str, Any]) -> None:
    _set(obj, "preemptionPolicy", "PreemptLowerPriority")


def default_pod_template(obj: dict[str, Any]) -> None:
    default_template(obj)


def default_limit_range(obj: dict[str, Any]) -> None:
    """A Container item's default limit falls back to its max, and its default request to the
    default limit, then to the min (SetDefaults_LimitRangeItem)."""
    for item in _dicts(_obj(obj, "spec") or {}, "limits"):
        if item.get("type") != "Container":
            continue
        default = item.setdefault("default", {})
        request = item.setdefault("defaultRequest", {})
        if not isinstance(default, dict) or not isinstance(request, dict):
            continue
        for source, target in (("max", default), ("default", request), ("min", request)):
            values = item.get(source)
            for name, value in (values.items() if isinstance(values, dict) else ()):
                target.setdefault(name, value)
