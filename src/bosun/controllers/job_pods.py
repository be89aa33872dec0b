"""What the Job controller needs to know about its pods, as pure functions: completion
indexes (and their compact ``1,3-5`` form), the pods it creates, when a pod finished, and
the back-off owed after failures."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bosun.controllers._common import is_terminating, owner_ref, parse_time

Obj = dict[str, Any]

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"


def parse_indexes(text: str | None, limit: int) -> set[int]:
    """``"0,2-4"`` -> {0, 2, 3, 4}, dropping anything at or beyond ``limit``."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            continue
        out.update(i for i in range(first, min(last, limit - 1) + 1) if i >= 0)
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """{0, 2, 3, 4} -> ``"0,2-4"``: Kubernetes' ``status.completedIndexes``."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(_span(run))
        run = [i]
    if run:
        parts.append(_span(run))
    return ",".join(parts)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def pod_index(pod: Obj) -> int | None:
    meta = pod.get("metadata") or {}
    for source in (meta.get("annotations") or {}, meta.get("labels") or {}):
        value = source.get(INDEX_KEY)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_active(pod: Obj) -> bool:
    return phase(pod) not in ("Succeeded", "Failed") and not is_terminating(pod)


def is_terminating_active(pod: Obj) -> bool:
    """Being deleted but not yet finished: Kubernetes' ``status.terminating``."""
    return phase(pod) not in ("Succeeded", "Failed") and is_terminating(pod)


def restarts(pod: Obj) -> int:
    status = pod.get("status") or {}
    total = 0
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            total += int(cs.get("restartCount") or 0)
    return total


def finish_time(pod: Obj) -> datetime | None:
    """When the pod finished: its last container's end, else its latest condition change,
    else its creation (a pod marked finished by hand may carry nothing better)."""
    status = pod.get("status") or {}
    ends: list[datetime] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            t = parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            if t is not None:
                ends.append(t)
    if not ends:
        for c in status.get("conditions") or []:
            t = parse_time(c.get("lastTransitionTime"))
            if t is not None:
                ends.append(t)
    if ends:
        return max(ends)
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def backoff_remaining(pods: Iterable[Obj], now: datetime, base: float, cap: float) -> float:
    """Seconds to wait before creating a replacement: ``base * 2**(n-1)`` (capped) after the
    last failure, where n counts failures since the last success (Kubernetes' pod failure
    back-off)."""
    last_success: datetime | None = None
    failures: list[datetime] = []
    for pod in pods:
        p = phase(pod)
        t = finish_time(pod)
        if t is None:
            continue
        if p == "Succeeded" and (last_success is None or t > last_success):
            last_success = t
        elif p == "Failed":
            failures.append(t)
    recent = [t for t in failures if last_success is None or t > last_success]
    if not recent:
        return 0.0
    delay = min(base * 2 ** (len(recent) - 1), cap)
    wait_until = max(recent) + timedelta(seconds=delay)
    return max(0.0, (wait_until - now).total_seconds())


def pod_for_job(job: Obj, index: int | None) -> Obj:
    """A pod from the Job's template; for Indexed Jobs it carries its index (annotation,
    label, ``JOB_COMPLETION_INDEX`` in every container, hostname ``<job>-<index>``)."""
    spec = job.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    name = job["metadata"]["name"]
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    pod_spec = template.get("spec") or {}
    meta: Obj = {"namespace": job["metadata"].get("namespace"), "ownerReferences": [owner_ref(job)]}
    if index is None:
        meta["generateName"] = f"{name}-"
    else:
        meta["generateName"] = f"{name}-{index}-"
        labels[INDEX_KEY] = str(index)
        annotations[INDEX_KEY] = str(index)
        for key in ("initContainers", "containers"):
            for c in pod_spec.get(key) or []:
                env = [e for e in c.get("env") or [] if e.get("name") != INDEX_ENV]
                c["env"] = [*env, {"name": INDEX_ENV, "value": str(index)}]
        hostname = f"{name}-{index}"
        if not pod_spec.get("hostname") and len(hostname) <= 63:
            pod_spec["hostname"] = hostname
    meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


def deletion_order(pod: Obj) -> tuple[int, int, str]:
    """Sort key: pods to delete first (unscheduled, not running, youngest)."""
    scheduled = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    running = 1 if phase(pod) == "Running" else 0
    created = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
    # Youngest first: invert the timestamp's order by negating via sort reversal on it.
    return scheduled, running, "".join(chr(0x10FFFF - ord(ch)) for ch in created)
