"""Decisions of a DaemonSet rolling update and its status counts, as pure functions over
"which daemon pods are on which node", so they can be reasoned about (and tested) apart
from the API calls that carry them out.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from bosun.controllers._common import is_pod_available, is_pod_ready

Obj = dict[str, Any]
HASH_LABEL = "controller-revision-hash"


def pod_hash(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL) or "")


def by_age(pods: list[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"].get("name", "")))


def scaled(value: Any, total: int, default: int) -> int:
    """An int-or-percent (``"25%"``) of ``total``, rounded up as Kubernetes does for daemons."""
    if value is None:
        return default
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return int(value)


def rollout_limits(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxUnavailable, maxSurge) for this many desired pods; never both zero."""
    ru = (((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")) or {}
    surge = scaled(ru.get("maxSurge"), desired, 0)
    unavailable = scaled(ru.get("maxUnavailable"), desired, 1)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return unavailable, surge


def plan_rollout(ds: Obj, desired: dict[str, list[Obj]], current_hash: str,
                 at: datetime | None = None) -> tuple[list[Obj], list[str]]:
    """Old pods to delete and nodes to surge a new pod onto, for one step of a rolling update.

    ``desired`` maps every node that should run the daemon to its live pods there. Old
    pods that are not available go at once (they serve nothing); available ones go only
    while fewer than maxUnavailable nodes lack an available pod. With maxSurge the new pod
    starts beside the old one, which goes when the new one is available.
    """
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    max_unavailable, max_surge = rollout_limits(ds, len(desired))
    delete: list[Obj] = []
    candidates: list[tuple[str, Obj]] = []
    unavailable = 0
    surging = 0
    for node in sorted(desired):
        pods = desired[node]
        new = [p for p in pods if pod_hash(p) == current_hash]
        old = [p for p in pods if pod_hash(p) != current_hash]
        new_ok = any(is_pod_available(p, min_ready, at) for p in new)
        if not old:
            if not new_ok:
                unavailable += 1
            continue
        if new:
            # Mid-surge on this node: the old pod goes once the new one is available.
            if new_ok:
                delete.extend(old)
            else:
                surging += 1
            continue
        if not all(is_pod_available(p, min_ready, at) for p in old):
            delete.extend(old)
            unavailable += 1
            continue
        candidates.append((node, old[0]))
    if max_surge > 0:
        room = max(0, max_surge - surging)
        return delete, [node for node, _ in candidates[:room]]
    room = max(0, max_unavailable - unavailable)
    delete.extend(pod for _, pod in candidates[:room])
    return delete, []


def daemon_status(ds: Obj, should_run: dict[str, bool], on_node: dict[str, list[Obj]], current_hash: str,
                  at: datetime | None = None) -> Obj:
    """Kubernetes' DaemonSet status counts; the oldest pod on a node stands for that node."""
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    desired = current = misscheduled = ready = available = updated = 0
    for node, run in should_run.items():
        pods = by_age(on_node.get(node) or [])
        if not run:
            if pods:
                misscheduled += 1
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = pods[0]
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, at):
                available += 1
        if pod_hash(pod) == current_hash:
            updated += 1
    return {"desiredNumberScheduled": desired, "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled, "numberReady": ready, "numberAvailable": available,
            "numberUnavailable": desired - available, "updatedNumberScheduled": updated}
