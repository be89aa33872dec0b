"""Defaults of apps/v1 and batch/v1 kinds (replicas, strategies, history limits, Job selectors)."""

from __future__ import annotations

import copy
from typing import Any

from bosun.api.defaults.core import default_pvc
from bosun.api.defaults.pod import _dicts, _obj, _set, default_template

JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _child(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``parent[key]``, created empty when absent; None when the client put a non-object there
    (validation reports it)."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _rolling_update(spec: dict[str, Any], field: str, **defaults: Any) -> None:
    """A workload's update strategy defaults to RollingUpdate with these rollingUpdate values."""
    strategy = _child(spec, field)
    if strategy is None:
        return
    _set(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = _child(strategy, "rollingUpdate")
        if ru is not None:
            for k, v in defaults.items():
                _set(ru, k, v)


def default_deployment(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is None:
        return
    _set(spec, "replicas", 1)
    _rolling_update(spec, "strategy", maxUnavailable="25%", maxSurge="25%")
    _set(spec, "revisionHistoryLimit", 10)
    _set(spec, "progressDeadlineSeconds", 600)
    default_template(spec)


def default_replicaset(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is None:
        return
    _set(spec, "replicas", 1)
    default_template(spec)


def default_replication_controller(obj: dict[str, Any]) -> None:
    """Upstream's: the selector and the object's labels come from the template's labels
    when left out (the form ``kubectl`` users of old manifests rely on)."""
    spec = _obj(obj, "spec")
    if spec is None:
        return
    template = spec.get("template")
    labels = ((template or {}).get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    if isinstance(labels, dict) and labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = obj.setdefault("metadata", {})
        if isinstance(meta, dict) and not meta.get("labels"):
            meta["labels"] = dict(labels)
    _set(spec, "replicas", 1)
    if isinstance(template, dict):
        default_template(spec)


def default_statefulset(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is None:
        return
    _set(spec, "replicas", 1)
    _set(spec, "podManagementPolicy", "OrderedReady")
    _rolling_update(spec, "updateStrategy", partition=0)
    _set(spec, "revisionHistoryLimit", 10)
    policy = _child(spec, "persistentVolumeClaimRetentionPolicy")
    if policy is not None:
        _set(policy, "whenDeleted", "Retain")
        _set(policy, "whenScaled", "Retain")
    for vct in _dicts(spec, "volumeClaimTemplates"):
        default_pvc(vct)
    default_template(spec)


def default_daemonset(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is None:
        return
    _rolling_update(spec, "updateStrategy", maxUnavailable=1, maxSurge=0)
    _set(spec, "revisionHistoryLimit", 10)
    default_template(spec)


def default_job_spec(spec: dict[str, Any]) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    _set(spec, "parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    _set(spec, "completionMode", "NonIndexed")
    _set(spec, "suspend", False)
    _set(spec, "manualSelector", False)
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    default_template(spec)


def default_job(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is None:
        return
    default_job_spec(spec)
    meta = _obj(obj, "metadata")
    if meta is None:
        return
    template = _obj(spec, "template")
    tmeta = _obj(template, "metadata") if template is not None else None
    if template is not None and tmeta is None:
        tmeta = template["metadata"] = {}
    uid, name = meta.get("uid"), meta.get("name")
    if spec.get("manualSelector") is not True and spec.get("selector") is None and uid and tmeta is not None:
        # As Kubernetes' generateSelector: the Job owns exactly the pods carrying its uid.
        labels = tmeta.get("labels")
        if labels is None:
            labels = tmeta["labels"] = {}
        if isinstance(labels, dict):
            labels.setdefault(JOB_UID_LABEL, uid)
            labels.setdefault(JOB_NAME_LABEL, name)
            labels.setdefault("controller-uid", uid)
            labels.setdefault("job-name", name)
            spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
    tlabels = tmeta.get("labels") if tmeta is not None else None
    if isinstance(tlabels, dict) and tlabels and not meta.get("labels"):
        meta["labels"] = copy.deepcopy(tlabels)


def default_cronjob(obj: dict[str, Any]) -> None:
    spec = _obj(obj, "spec")
    if spec is None:
        return
    _set(spec, "concurrencyPolicy", "Allow")
    _set(spec, "suspend", False)
    _set(spec, "successfulJobsHistoryLimit", 3)
    _set(spec, "failedJobsHistoryLimit", 1)
    jt = _obj(spec, "jobTemplate")
    jspec = _obj(jt, "spec") if jt is not None else None
    if jspec is not None:
        default_template(jspec)
