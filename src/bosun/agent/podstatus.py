"""A pod's status as the API shows it, built from the runtime's records of its containers.

Why apart from the worker: the worker decides what to run; this says what the user sees
(phase, conditions, containerStatuses) from plain inputs (:class:`PodFacts`), so the rules
(phase per restart policy, waiting reasons, readiness from probes) are read and tested alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bosun.agent import podspec
from bosun.agent.probes import ContainerProbes
from bosun.agent.runtime.base import ContainerState, ContainerStatus
from bosun.agent.status import condition, rfc3339, terminated


@dataclass(frozen=True)
class PodFacts:
    """What the worker knows beyond the containers' records: the pod, why containers wait,
    their probe states, and whether the pod reached its end or was evicted."""

    pod: dict[str, Any]
    runtime: str
    node_ip: str
    pod_ip: str
    sandbox_ready: bool
    start_time: str
    waiting: Mapping[str, tuple[str, str]]
    probes: Mapping[str, ContainerProbes]
    terminal: bool
    evicted: str


def container_status(f: PodFacts, c: dict[str, Any], st: ContainerStatus | None, prev: ContainerStatus | None,
                     *, init: bool, init_ok: bool, final: bool) -> dict[str, Any]:
    """One entry of containerStatuses (or init/ephemeral ones)."""
    rt = f.runtime
    name = c["name"]
    out: dict[str, Any] = {"name": name, "image": c.get("image") or "", "imageID": "", "ready": False,
                           "restartCount": st.attempt if st else 0, "started": False, "state": {},
                           "lastState": {}}
    if st is not None:
        out["containerID"] = f"{rt}://{st.id}"
        out["imageID"] = st.image_id
    if prev is not None:
        out["lastState"] = {"terminated": terminated(prev, rt)}
    waiting = f.waiting.get(name)
    if st is None or st.state == ContainerState.CREATED:
        reason, msg = waiting or (("ContainerCreating" if (init_ok or init) else "PodInitializing"), "")
        out["state"] = {"waiting": {"reason": reason, **({"message": msg} if msg else {})}}
    elif st.state == ContainerState.RUNNING:
        probes = f.probes.get(st.id)
        started = probes.started if probes else "startupProbe" not in c
        out["state"] = {"running": {"startedAt": rfc3339(st.started_at or st.created_at)}}
        out["started"] = started
        out["ready"] = started and (probes.ready if probes else "readinessProbe" not in c)
    elif waiting and not final:
        out["state"] = {"waiting": {"reason": waiting[0], **({"message": waiting[1]} if waiting[1] else {})}}
        out["lastState"] = {"terminated": terminated(st, rt)}
    else:
        out["state"] = {"terminated": terminated(st, rt)}
    return out


def build_status(f: PodFacts, latest: dict[str, ContainerStatus], previous: dict[str, ContainerStatus], *,
                 init_ok: bool, final: bool = False) -> dict[str, Any]:
    """The pod's whole status from the runtime's latest and previous container records."""
    spec = f.pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    cstat = [container_status(f, c, latest.get(c["name"]), previous.get(c["name"]), init=False,
                                    init_ok=init_ok, final=final) for c in containers]
    istat = [container_status(f, c, latest.get(c["name"]), previous.get(c["name"]), init=True,
                                    init_ok=init_ok, final=final) for c in inits]
    phase = pod_phase(policy, containers, inits, latest, init_ok, f.terminal, f.waiting, final)
    old = (f.pod.get("status") or {}).get("conditions") or []
    unready = [s["name"] for s in cstat if not s["ready"]]
    pending_init = [c["name"] for c in inits
                    if not (latest.get(c["name"]) and latest[c["name"]].exit_code == 0)]
    msg = f"containers with unready status: [{' '.join(unready)}]"
    ip = f.pod_ip
    ready = not unready and phase == "Running"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            condition(old, "PodReadyToStartContainers", f.sandbox_ready and not final),
            condition(old, "Initialized", init_ok or not pending_init, "ContainersNotInitialized",
                      f"containers with incomplete status: [{' '.join(pending_init)}]"),
            condition(old, "Ready", ready, "PodCompleted" if phase in ("Succeeded", "Failed")
                      else "ContainersNotReady", "" if phase in ("Succeeded", "Failed") else msg),
            condition(old, "ContainersReady", ready, "PodCompleted" if phase in ("Succeeded", "Failed")
                      else "ContainersNotReady", "" if phase in ("Succeeded", "Failed") else msg),
            condition(old, "PodScheduled", True),
        ],
        "hostIP": f.node_ip, "hostIPs": [{"ip": f.node_ip}],
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": f.start_time,
        "qosClass": podspec.qos_class(f.pod),
        "containerStatuses": cstat,
    }
    if inits:
        status["initContainerStatuses"] = istat
    debug = spec.get("ephemeralContainers") or []
    if debug:
        status["ephemeralContainerStatuses"] = [
            container_status(f, c, latest.get(c["name"]), None, init=False, init_ok=init_ok, final=final)
            for c in debug]
    if f.evicted:
        status.update({"phase": "Failed", "reason": "Evicted", "message": f.evicted})
        for cond in status["conditions"]:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond.update(condition(old, cond["type"], False, "PodFailed", ""))
    return status


def pod_phase(policy: str, containers: list[dict[str, Any]], inits: list[dict[str, Any]],
              latest: dict[str, ContainerStatus], init_ok: bool, terminal: bool,
              waiting: Mapping[str, tuple[str, str]], final: bool) -> str:
    """Kubernetes' pod phase from the containers' records and the restart policy."""
    init_failed = any(
        (st := latest.get(c["name"])) is not None and st.state == ContainerState.EXITED and st.exit_code != 0
        for c in inits)
    if init_failed and policy == "Never":
        return "Failed"
    if not init_ok:
        return "Pending"
    sts = [latest.get(c["name"]) for c in containers]
    if any(s is None for s in sts):
        return "Pending"
    done = [s for s in sts if s is not None and s.state == ContainerState.EXITED]
    if len(done) == len(sts) and (final or terminal or policy != "Always"):
        if all(s.exit_code == 0 for s in done):
            if policy != "Always" or final:
                return "Succeeded"
        elif policy == "Never" or final:
            return "Failed"
    return "Running"
