"""Pod rows: READY, STATUS and RESTARTS as kubectl derives them from container statuses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bosun.api.tables.format import Cells, Obj, age, dig, human_duration, name_of, or_none, parse_time


def _restartable_init(c: Any) -> bool:
    return isinstance(c, dict) and c.get("restartPolicy") == "Always"


def _cond_true(status: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def _pod_status(pod: Obj, now: datetime) -> tuple[str, str, str]:
    """READY, STATUS and RESTARTS exactly as kubectl derives them from a pod."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    total = len(spec.get("containers") or [])
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total += sum(1 for c in init_specs.values() if _restartable_init(c))
    n_init = len(spec.get("initContainers") or [])

    def later(a: datetime | None, cs: Obj) -> datetime | None:
        t = parse_time(dig(cs, "lastState", "terminated", "finishedAt"))
        return t if t is not None and (a is None or t > a) else a

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        last_restart = later(last_restart, cs)
        sidecar = _restartable_init(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            last_sidecar_restart = later(last_sidecar_restart, cs)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if term is not None:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode') or 0}"
        elif wait is not None and wait.get("reason") and wait.get("reason") != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break

    if not initializing or _cond_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = later(last_restart, cs)
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                code = term.get("exitCode") or 0
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{code}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _cond_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restart_text = str(restarts)
    if restarts and last_restart is not None:
        restart_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    return f"{ready}/{total}", reason, restart_text


def pod_row(pod: Obj, now: datetime) -> Cells:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready, reason, restarts = _pod_status(pod, now)
    ips = status.get("podIPs") or []
    ip = (ips[0].get("ip") if ips else None) or status.get("podIP")
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        ok = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
        gates_text = f"{ok}/{len(gates)}"
    return [
        name_of(pod),
        ready,
        reason,
        restarts,
        age(pod, now),
        or_none(ip),
        or_none(spec.get("nodeName")),
        or_none(status.get("nominatedNodeName")),
        gates_text,
    ]


def pod_conditions(pod: Obj) -> list[Obj] | None:
    phase = dig(pod, "status", "phase")
    if phase in ("Succeeded", "Failed"):
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": phase,
                "message": "The pod has completed successfully."
                if phase == "Succeeded"
                else "The pod failed.",
            }
        ]
    return None
