"""Waiting for a service to converge, reporting progress as ``docker service create`` does
("overall progress: 2 out of 3 tasks", then "verify: Service web converged"), and noticing a
failed update early: a task of the new spec that crashes or cannot start fails the wait
with its reason, so the caller can pause or roll back as update_config says."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bosun.client.rest import Client
from bosun.swarm.services import ServiceRef, tasks

JSON = dict[str, Any]
_BAD_WAITING = frozenset({"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerError",
                          "RunContainerError", "CreateContainerConfigError", "InvalidImageName"})


@dataclass(frozen=True, slots=True)
class Outcome:
    converged: bool
    failure: str = ""  # why a task of the new spec failed ("" on a timeout)


def _created(pod: JSON) -> dt.datetime | None:
    text = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def task_failure(pod: JSON) -> str:
    """Why this task failed ("" if it did not)."""
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return f"task {pod['metadata']['name']}: {status.get('reason') or 'failed'}"
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _BAD_WAITING:
            return f"task {pod['metadata']['name']}: {waiting['reason']}"
        terminated = (cs.get("lastState") or {}).get("terminated") or {}
        if terminated.get("exitCode"):
            return f"task {pod['metadata']['name']}: non-zero exit ({terminated['exitCode']})"
    return ""


async def _failure(client: Client, svc: ServiceRef, since: dt.datetime) -> str:
    for pod in await tasks(client, svc):
        created = _created(pod)
        reason = task_failure(pod) if created is not None and created >= since else ""
        if reason:
            return reason
    return ""


async def converge(client: Client, svc: ServiceRef, say: Callable[[str], None], within: float,
                   since: dt.datetime | None = None, monitor: float = 0.0) -> Outcome:
    """Wait until every task of the current spec runs. With ``since`` (the update's start),
    a task created after it that fails ends the wait at once, and the service must stay
    converged for ``monitor`` seconds (Swarm's update monitor) before the update counts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: tuple[int, int] | None = None
    stable_since: float | None = None
    while True:
        obj = await client.get(svc.kind.resource, svc.name, svc.namespace)
        done, want, converged = svc.kind.progress(obj)
        if (done, want) != last:
            say(f"overall progress: {done} out of {want} tasks")
            last = (done, want)
        if since is not None:
            reason = await _failure(client, svc, since)
            if reason:
                return Outcome(False, reason)
        if converged:
            stable_since = loop.time() if stable_since is None else stable_since
            if since is None or loop.time() - stable_since >= monitor:
                say(f"verify: Service {svc.display} converged")
                return Outcome(True)
        else:
            stable_since = None
        if loop.time() >= deadline:
            return Outcome(False)
        await asyncio.sleep(0.3)
