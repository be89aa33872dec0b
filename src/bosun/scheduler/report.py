"""Telling users what the scheduler did: events, and the pod's PodScheduled condition.

Writes are fire-and-forget background tasks: a slow or failing status write must never
hold up scheduling, and a repeated identical failure is not written again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from bosun.api.registry import Resource
from bosun.client.events import EventRecorder
from bosun.client.rest import Client

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled":
            return dict(c)
    return None


class Reporter:
    def __init__(self, client: Client, pods: Resource, recorder: EventRecorder) -> None:
        self.client = client
        self.pods = pods
        self.recorder = recorder
        self._tasks: set[asyncio.Task[None]] = set()

    def scheduled(self, pod: Obj, node: str) -> None:
        m = pod["metadata"]
        self.recorder.event(pod, "Normal", "Scheduled", f"Successfully assigned {m['namespace']}/{m['name']} to {node}")

    def failed(self, pod: Obj, message: str, *, reason: str = "Unschedulable", nominated: str = "") -> None:
        """FailedScheduling event, and PodScheduled=False with ``message`` on the pod."""
        self.recorder.event(pod, "Warning", "FailedScheduling", message)
        cond = scheduled_condition(pod)
        status_nominated = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if (cond is not None and cond.get("status") == "False" and cond.get("reason") == reason
                and cond.get("message") == message and status_nominated == nominated):
            return
        status: Obj = {"conditions": [{"type": "PodScheduled", "status": "False", "reason": reason,
                                       "message": message, "lastProbeTime": None,
                                       "lastTransitionTime": _now()}]}
        if nominated:
            status["nominatedNodeName"] = nominated
        self._spawn(self._patch_status(pod, status))

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event(obj, type_, reason, message)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _patch_status(self, pod: Obj, status: Obj) -> None:
        m = pod["metadata"]
        try:
            await self.client.patch(self.pods, m["name"], {"status": status}, m["namespace"],
                                    patch_type="strategic", subresource="status")
        except Exception as exc:  # best effort: the next attempt writes again
            log.debug("could not set PodScheduled on %s/%s: %s", m["namespace"], m["name"], exc)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
