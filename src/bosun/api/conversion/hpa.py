"""HorizontalPodAutoscaler autoscaling/v1 <-> autoscaling/v2 (what ``kubectl autoscale`` writes).

autoscaling/v1 knows one metric, ``targetCPUUtilizationPercentage``. As upstream's
conversion does, whatever v2 holds that v1 cannot say (other metrics, their current values,
conditions, behavior) travels in ``autoscaling.alpha.kubernetes.io/*`` annotations, so a
v1 read-modify-write never loses a v2 field.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from bosun.api.errors import FieldError

Obj = dict[str, Any]

METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
_ANNOTATIONS = (METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR)


def _is_cpu_utilization(m: Obj) -> bool:
    res = m.get("resource") or {}
    return (m.get("type") == "Resource" and res.get("name") == "cpu"
            and (res.get("target") or {}).get("type") == "Utilization")


def _load(annotations: dict[str, str], key: str) -> Any:
    raw = annotations.pop(key, None)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class HPAv1:
    """autoscaling/v1 HorizontalPodAutoscaler, stored as autoscaling/v2."""

    storage_group = "autoscaling"
    storage_version = "v2"

    def validate(self, obj: Obj) -> list[FieldError]:
        return []

    def to_storage(self, obj: Obj) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"] = "autoscaling/v2"
        meta = out.get("metadata")
        annotations: dict[str, str] = dict(meta.get("annotations") or {}) if isinstance(meta, dict) else {}
        spec = out.get("spec")
        if isinstance(spec, dict):
            cpu = spec.pop("targetCPUUtilizationPercentage", None)
            metrics = [m for m in _load(annotations, METRICS) or [] if isinstance(m, dict) and not
                       _is_cpu_utilization(m)]
            if cpu is not None:
                metrics.insert(0, {"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}})
            if metrics:
                spec["metrics"] = metrics
            behavior = _load(annotations, BEHAVIOR)
            if isinstance(behavior, dict):
                spec["behavior"] = behavior
        status = out.get("status")
        if isinstance(status, dict):
            cpu_now = status.pop("currentCPUUtilizationPercentage", None)
            current = [m for m in _load(annotations, CURRENT_METRICS) or [] if isinstance(m, dict)
                       and not (m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu")]
            if cpu_now is not None:
                current.insert(0, {"type": "Resource", "resource": {
                    "name": "cpu", "current": {"averageUtilization": cpu_now}}})
            if current:
                status["currentMetrics"] = current
            conditions = _load(annotations, CONDITIONS)
            if isinstance(conditions, list):
                status["conditions"] = conditions
        for key in _ANNOTATIONS:
            annotations.pop(key, None)
        if isinstance(meta, dict):
            if annotations:
                meta["annotations"] = annotations
            else:
                meta.pop("annotations", None)
        return out

    def from_storage(self, obj: Obj) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"] = "autoscaling/v1"
        meta = out.setdefault("metadata", {})
        annotations: dict[str, str] = dict(meta.get("annotations") or {})
        spec = out.get("spec") or {}
        metrics = spec.pop("metrics", None) or []
        others = []
        for m in metrics:
            if _is_cpu_utilization(m) and "targetCPUUtilizationPercentage" not in spec:
                spec["targetCPUUtilizationPercentage"] = m["resource"]["target"].get("averageUtilization")
            else:
                others.append(m)
        if others:
            annotations[METRICS] = json.dumps(others)
        behavior = spec.pop("behavior", None)
        if behavior:
            annotations[BEHAVIOR] = json.dumps(behavior)
        status = out.get("status")
        if isinstance(status, dict):
            current_others = []
            for m in status.pop("currentMetrics", None) or []:
                res = m.get("resource") or {}
                util = (res.get("current") or {}).get("averageUtilization")
                if m.get("type") == "Resource" and res.get("name") == "cpu" and util is not None:
                    status["currentCPUUtilizationPercentage"] = util
                else:
                    current_others.append(m)
            if current_others:
                annotations[CURRENT_METRICS] = json.dumps(current_others)
            conditions = status.pop("conditions", None)
            if conditions:
                annotations[CONDITIONS] = json.dumps(conditions)
        if annotations:
            meta["annotations"] = annotations
        return out


HPA_V1 = HPAv1()
