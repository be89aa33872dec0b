"""Rows of the workload controllers: deployments, replica sets, stateful and daemon sets, jobs."""

from __future__ import annotations

from datetime import datetime

from bosun.api.tables.format import (
    Cells,
    Obj,
    age,
    bool_text,
    dig,
    format_labels,
    format_selector,
    human_duration,
    name_of,
    or_none,
    parse_time,
    pod_spec_columns,
    since,
    to_int,
)


def deployment_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    desired = to_int(spec.get("replicas", 1))
    return [
        name_of(o),
        f"{to_int(st.get('readyReplicas'))}/{desired}",
        to_int(st.get("updatedReplicas")),
        to_int(st.get("availableReplicas")),
        age(o, now),
        *pod_spec_columns(dig(spec, "template", "spec")),
        format_selector(spec.get("selector")),
    ]


def replicaset_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        name_of(o),
        to_int(spec.get("replicas", 1)),
        to_int(st.get("replicas")),
        to_int(st.get("readyReplicas")),
        age(o, now),
        *pod_spec_columns(dig(spec, "template", "spec")),
        format_selector(spec.get("selector")),
    ]


def replicationcontroller_row(o: Obj, now: datetime) -> Cells:
    """A ReplicaSet's row, but the selector is a plain map of labels."""
    row = replicaset_row(o, now)
    selector = (o.get("spec") or {}).get("selector")
    row[-1] = ",".join(f"{k}={v}" for k, v in sorted(selector.items())) if isinstance(selector, dict) else "<none>"
    return row


def statefulset_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        name_of(o),
        f"{to_int(st.get('readyReplicas'))}/{to_int(spec.get('replicas', 1))}",
        age(o, now),
        *pod_spec_columns(dig(spec, "template", "spec")),
    ]


def daemonset_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        name_of(o),
        to_int(st.get("desiredNumberScheduled")),
        to_int(st.get("currentNumberScheduled")),
        to_int(st.get("numberReady")),
        to_int(st.get("updatedNumberScheduled")),
        to_int(st.get("numberAvailable")),
        format_labels(dig(spec, "template", "spec", "nodeSelector")),
        age(o, now),
        *pod_spec_columns(dig(spec, "template", "spec")),
        format_selector(spec.get("selector")),
    ]


def _job_status(o: Obj) -> str:
    conds = {c.get("type") for c in dig(o, "status", "conditions") or [] if c.get("status") == "True"}
    if "Complete" in conds:
        return "Complete"
    if "Failed" in conds:
        return "Failed"
    if dig(o, "metadata", "deletionTimestamp"):
        return "Terminating"
    if "SuccessCriteriaMet" in conds:
        return "SuccessCriteriaMet"
    if "FailureTarget" in conds:
        return "FailureTarget"
    if "Suspended" in conds:
        return "Suspended"
    return "Running"


def job_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    done = to_int(st.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{done}/{to_int(spec['completions'])}"
    elif spec.get("parallelism") is not None and to_int(spec["parallelism"]) > 1:
        completions = f"{done}/1 of {to_int(spec['parallelism'])}"
    else:
        completions = f"{done}/1"
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration(((end or now) - start).total_seconds())
    return [
        name_of(o),
        _job_status(o),
        completions,
        duration,
        age(o, now),
        *pod_spec_columns(dig(spec, "template", "spec")),
        format_selector(spec.get("selector")),
    ]


def cronjob_row(o: Obj, now: datetime) -> Cells:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    last = since(st["lastScheduleTime"], now) if st.get("lastScheduleTime") else "<none>"
    job_spec = dig(spec, "jobTemplate", "spec") or {}
    return [
        name_of(o),
        spec.get("schedule", ""),
        or_none(spec.get("timeZone")),
        bool_text(spec.get("suspend")),
        len(st.get("active") or []),
        last,
        age(o, now),
        *pod_spec_columns(dig(job_spec, "template", "spec")),
        format_selector(job_spec.get("selector")),
    ]


def controllerrevision_row(o: Obj, now: datetime) -> Cells:
    owner = next((r for r in dig(o, "metadata", "ownerReferences") or [] if r.get("controller")), None)
    ctrl = "<none>"
    if owner:
        group = str(owner.get("apiVersion", "")).rpartition("/")[0]
        kind = str(owner.get("kind", "")).lower() + (f".{group}" if group else "")
        ctrl = f"{kind}/{owner.get('name', '')}"
    return [name_of(o), ctrl, to_int(o.get("revision")), age(o, now)]
