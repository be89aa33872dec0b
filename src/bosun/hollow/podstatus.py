"""The pod status a kubelet would post, for pods that run nowhere.

Controllers decide on these fields (Ready for Deployments and Services, phase and exit codes
for Jobs), so the shapes follow what a real kubelet writes field for field.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _cond(kind: str, status: str, now: str, reason: str | None = None) -> Obj:
    c: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
    if reason:
        c["reason"] = reason
    return c


def _scheduled(pod: Obj, now: str) -> Obj:
    """Keep the scheduler's PodScheduled condition (a merge patch replaces the whole list)."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled":
            return dict(c)
    return _cond("PodScheduled", "True", now)


def _container_id(pod: Obj, name: str) -> str:
    uid = (pod.get("metadata") or {}).get("uid") or "unknown"
    return f"hollow://{uid}/{name}"


def _status_of(pod: Obj, c: Obj, state: Obj, *, ready: bool, started: bool) -> Obj:
    image = str(c.get("image") or "")
    return {
        "name": c.get("name"), "image": image, "imageID": f"hollow://{image}",
        "containerID": _container_id(pod, str(c.get("name"))), "ready": ready, "started": started,
        "restartCount": 0, "state": state, "lastState": {},
    }


def _init_statuses(pod: Obj, start: str) -> list[Obj]:
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start, "finishedAt": start,
                           "containerID": ""}}
    out = []
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        st = _status_of(pod, c, done, ready=True, started=False)
        st["state"]["terminated"]["containerID"] = st["containerID"]
        out.append(st)
    return out


def is_running(pod: Obj) -> bool:
    """Whether a kubelet already reported this pod up (Running and Ready)."""
    st = pod.get("status") or {}
    if st.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


def running_status(pod: Obj, host_ip: str, pod_ip: str, now: str) -> Obj:
    """Every container started and ready, all at ``now``."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        pod_ip = host_ip
    containers = [
        _status_of(pod, c, {"running": {"startedAt": now}}, ready=True, started=True)
        for c in spec.get("containers") or []
    ]
    status: Obj = {
        "phase": "Running",
        "conditions": [
            _cond("PodReadyToStartContainers", "True", now),
            _cond("Initialized", "True", now),
            _cond("Ready", "True", now),
            _cond("ContainersReady", "True", now),
            _scheduled(pod, now),
        ],
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": containers,
    }
    inits = _init_statuses(pod, now)
    if inits:
        status["initContainerStatuses"] = inits
    return status


def succeeded_status(pod: Obj, now: str) -> Obj:
    """Every container exited 0 at ``now`` (a finished Job pod)."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    started = str(old.get("startTime") or now)
    running = {str(s.get("name")): s for s in old.get("containerStatuses") or []}
    containers = []
    for c in spec.get("containers") or []:
        began = ((running.get(str(c.get("name"))) or {}).get("state") or {}).get("running", {}).get("startedAt")
        st = _status_of(pod, c, {}, ready=False, started=False)
        st["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": began or started,
                                      "finishedAt": now, "containerID": st["containerID"]}}
        containers.append(st)
    status: Obj = {
        "phase": "Succeeded",
        "conditions": [
            _cond("PodReadyToStartContainers", "False", now),
            _cond("Initialized", "True", started, "PodCompleted"),
            _cond("Ready", "False", now, "PodCompleted"),
            _cond("ContainersReady", "False", now, "PodCompleted"),
            _scheduled(pod, now),
        ],
        "containerStatuses": containers,
    }
    for k in ("hostIP", "hostIPs", "podIP", "podIPs", "startTime"):
        if k in old:
            status[k] = old[k]
    return status
