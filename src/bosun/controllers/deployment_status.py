"""Deployment status as `kubectl rollout status` reads it: replica counts summed over the
ReplicaSets, the Available condition, and the Progressing condition whose lastUpdateTime
moves on every bit of progress so that progressDeadlineSeconds measures a stall."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from bosun.controllers._common import condition, now, parse_time, rfc3339
from bosun.controllers.deployment_util import max_unavailable, spec_replicas, status_int

Obj = dict[str, Any]
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


def put_condition(status: Obj, type_: str, value: str, reason: str, message: str,
                  keep_transition: bool = True) -> None:
    """Set a condition; lastUpdateTime is always refreshed, lastTransitionTime only when the
    value changes (Kubernetes' SetDeploymentCondition, minus its same-reason shortcut)."""
    stamp = rfc3339()
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)
    if old is not None and old.get("status") == value and old.get("reason") == reason:
        if old.get("message") == message:
            return
    transition = old["lastTransitionTime"] if (old is not None and keep_transition
                                               and old.get("status") == value) else stamp
    conds.append({"type": type_, "status": value, "lastUpdateTime": stamp, "lastTransitionTime": transition,
                  "reason": reason, "message": message})
    status["conditions"] = sorted(conds, key=lambda c: 0 if c["type"] == "Available" else 1)


def has_deadline(d: Obj) -> bool:
    pds = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return pds is not None and int(pds) < 2**31 - 1


def calculate(d: Obj, all_rses: list[Obj], new_rs: Obj | None) -> Obj:
    available = sum(status_int(rs, "availableReplicas") for rs in all_rses)
    total = sum(spec_replicas(rs) for rs in all_rses)
    status = copy.deepcopy(d.get("status") or {})
    status.update({
        "observedGeneration": int(d["metadata"].get("generation") or 1),
        "replicas": sum(status_int(rs, "replicas") for rs in all_rses),
        "updatedReplicas": status_int(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in all_rses),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    })
    if available >= spec_replicas(d) - max_unavailable(d):
        put_condition(status, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        put_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                      "Deployment does not have minimum availability.")
    return status


def complete(d: Obj, st: Obj) -> bool:
    want = spec_replicas(d)
    return (st.get("updatedReplicas") == want and st.get("replicas") == want
            and st.get("availableReplicas") == want
            and int(st.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 1))


def progressing(d: Obj, new: Obj) -> bool:
    old = d.get("status") or {}

    def olds(s: Obj) -> int:
        return int(s.get("replicas") or 0) - int(s.get("updatedReplicas") or 0)
    return (int(new.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
            or olds(new) < olds(old)
            or int(new.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(new.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0))


def timed_out(d: Obj, st: Obj, at: datetime | None = None) -> bool:
    c = next((c for c in st.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if c is None or not has_deadline(d):
        return False
    if c.get("reason") == TIMED_OUT:
        return True
    if c.get("reason") == NEW_RS_AVAILABLE:
        return False
    since = parse_time(c.get("lastUpdateTime"))
    deadline = int(d["spec"]["progressDeadlineSeconds"])
    return since is not None and since + timedelta(seconds=deadline) < (at or now())


def rollout_status(d: Obj, all_rses: list[Obj], new_rs: Obj | None) -> Obj:
    """The status after a rollout step (Kubernetes' syncRolloutStatus)."""
    st = calculate(d, all_rses, new_rs)
    if not has_deadline(d):
        st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != "Progressing"]
        return st
    cur = condition(d, "Progressing")
    done = (st["replicas"] == st["updatedReplicas"] and cur is not None
            and cur.get("reason") == NEW_RS_AVAILABLE)
    name = (new_rs or {}).get("metadata", {}).get("name", "")
    if not done:
        if complete(d, st):
            put_condition(st, "Progressing", "True", NEW_RS_AVAILABLE,
                          f'ReplicaSet "{name}" has successfully progressed.')
        elif progressing(d, st):
            # Progress refreshes lastUpdateTime even with an unchanged reason and message.
            st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != "Progressing"]
            put_condition(st, "Progressing", "True", RS_UPDATED, f'ReplicaSet "{name}" is progressing.')
            if cur is not None and cur.get("status") == "True":
                for c in st["conditions"]:
                    if c["type"] == "Progressing":
                        c["lastTransitionTime"] = cur.get("lastTransitionTime", c["lastTransitionTime"])
        elif timed_out(d, st):
            put_condition(st, "Progressing", "False", TIMED_OUT, f'ReplicaSet "{name}" has timed out progressing.')
    return st


def stuck_requeue_after(d: Obj, st: Obj, at: datetime | None = None) -> float | None:
    """When to look again so that a stalled rollout is noticed at its deadline."""
    c = next((c for c in st.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if c is None or not has_deadline(d) or c.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    if complete(d, st):
        return None
    since = parse_time(c.get("lastUpdateTime"))
    if since is None:
        return None
    left = (since + timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"])) - (at or now())).total_seconds()
    return max(left, 0.0) + 1.0
