"""A service's pods as Docker's tasks: ``web.1`` names by slot, desired and current state
with their age, the error of a failed task, as ``docker service ps`` prints them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bosun.api.durations import human_duration

JSON = dict[str, Any]


def age(timestamp: str) -> str:
    try:
        t = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    t = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return human_duration((dt.datetime.now(dt.UTC) - t).total_seconds())


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    name: str
    image: str
    node: str
    desired: str
    current: str
    error: str
    ports: str

    def row(self, no_trunc: bool = False) -> list[str]:
        error = self.error if no_trunc or len(self.error) <= 40 else self.error[:39] + "…"
        ident = self.id if no_trunc else self.id[:12]
        return [ident, self.name, self.image, self.node, self.desired, self.current, error, self.ports]


def _state(pod: JSON) -> tuple[str, str, str]:
    """(current state word, since when, error) of a pod."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    since = (pod.get("metadata") or {}).get("creationTimestamp")
    error = ""
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "running" in state:
            since = state["running"].get("startedAt") or since
        elif "terminated" in state:
            t = state["terminated"]
            since = t.get("finishedAt") or since
            if t.get("exitCode"):
                error = f"task: non-zero exit ({t['exitCode']})"
        elif "waiting" in state:
            reason = str(state["waiting"].get("reason") or "")
            if reason and reason not in ("ContainerCreating", "PodInitializing"):
                error = f"{reason}: {state['waiting'].get('message') or ''}".rstrip(": ")
    word = {"Pending": "Pending" if not (pod.get("spec") or {}).get("nodeName") else "Preparing",
            "Running": "Running", "Succeeded": "Complete", "Failed": "Failed"}.get(phase, phase)
    if status.get("reason") and not error:
        error = f"{status['reason']}: {status.get('message') or ''}".rstrip(": ")
    return word, str(since or ""), error


def as_tasks(service_name: str, pods: list[JSON]) -> list[Task]:
    """``pods`` (oldest first) as tasks numbered by slot."""
    out = []
    for slot, pod in enumerate(pods, start=1):
        meta = pod.get("metadata") or {}
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        word, since, error = _state(pod)
        desired = "Shutdown" if meta.get("deletionTimestamp") else ("Complete" if word == "Complete" else "Running")
        out.append(Task(
            id=str(meta.get("uid") or "").replace("-", ""),
            name=f"{service_name}.{slot}",
            image=str(containers[0].get("image") or ""),
            node=str((pod.get("spec") or {}).get("nodeName") or ""),
            desired=desired,
            current=f"{word} {age(since)} ago" if since else word,
            error=error,
            ports=", ".join(f"*:{p['hostPort']}->{p.get('containerPort')}/{str(p.get('protocol') or 'TCP').lower()}"
                            for c in containers for p in c.get("ports") or [] if p.get("hostPort")),
        ))
    return out


TASK_HEADER = ["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"]


class BadFilter(Exception):
    """A ``--filter`` Docker would not accept."""


FILTER_KEYS = frozenset({"id", "name", "node", "desired-state"})


def parse_filters(items: tuple[str, ...] | list[str]) -> dict[str, set[str]]:
    """``-f desired-state=running -f node=n1`` -> ``{"desired-state": {"running"}, "node": {"n1"}}``."""
    out: dict[str, set[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in FILTER_KEYS:
            raise BadFilter(f"invalid filter '{item}' (want {', '.join(sorted(FILTER_KEYS))}=VALUE)")
        if key == "desired-state" and value not in ("running", "shutdown", "accepted", "complete"):
            raise BadFilter(f"invalid desired-state filter '{value}' (running, shutdown, accepted, complete)")
        out.setdefault(key, set()).add(value)
    return out


def matches(task: Task, filters: dict[str, set[str]]) -> bool:
    """Docker's rule: a task passes when, for every key, it matches one of the key's values."""
    checks = {
        "id": lambda v: task.id.startswith(v),
        "name": lambda v: task.name.startswith(v),
        "node": lambda v: task.node == v,
        "desired-state": lambda v: task.desired.lower() == v or (v == "accepted" and task.desired == "Running"),
    }
    return all(any(checks[key](v) for v in values) for key, values in filters.items())
