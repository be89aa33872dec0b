"""Pod garbage collector: removes pods nobody else will ever remove.

* Pods bound to a Node that no longer exists: no agent will run or finish them, and their
  controllers only replace pods that are gone. They are marked Failed (condition
  DisruptionTarget, reason DeletionByPodGC) and deleted with grace 0 once the Node has been
  missing for a short quarantine and the API confirms it (the informer may lag).
* Terminating pods that were never scheduled: nothing runs them, so their deletion needs no
  grace.
* Finished pods beyond ``TERMINATED_THRESHOLD``: the oldest go, so completed Jobs' pods cannot
  grow the store without bound (Kubernetes' --terminated-pod-gc-threshold).

Pods on nodes that are merely unreachable are the node lifecycle controller's business.
"""

from __future__ import annotations

import asyncio
import logging

from bosun.aio import cancel_and_wait
from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import (
    NODES,
    PODS,
    Controller,
    Obj,
    is_terminating,
    key_of,
    rfc3339,
    split_key,
)

log = logging.getLogger(__name__)

QUARANTINE = 3.0  # seconds a node must be missing before its pods are collected
TERMINATED_THRESHOLD = 12500
SWEEP_PERIOD = 20.0  # how often finished pods are counted
NODE_INDEX = "podgc-node"


def _node_of(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class PodGCController(Controller):
    """Keyed by pod (``ns/name``)."""

    name = "pod-garbage-collector"
    workers = 4

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.nodes = ctx.informers.get(NODES)
        self.pods = ctx.informers.get(PODS)
        self.pods.add_index(NODE_INDEX, lambda p: [n] if (n := _node_of(p)) else [])
        self.pods.add_handler(self._pod_seen, lambda old, new: self._pod_seen(new))
        self.nodes.add_handler(on_delete=self._node_deleted)

    def _pod_seen(self, pod: Obj) -> None:
        node = _node_of(pod)
        if node and self.nodes.has_synced and self.nodes.get(None, node) is None:
            self.queue.add_after(key_of(pod), QUARANTINE)
        elif not node and is_terminating(pod):
            self.queue.add(key_of(pod))

    def _node_deleted(self, node: Obj) -> None:
        for pod in self.pods.by_index(NODE_INDEX, str(node["metadata"]["name"])):
            self.queue.add_after(key_of(pod), QUARANTINE)

    async def run(self) -> None:
        await self.ctx.informers.start()
        for pod in self.pods.list():  # pods orphaned while no controller ran
            self._pod_seen(pod)
        sweeper = asyncio.create_task(self._sweep_loop(), name="podgc-sweep")
        try:
            await super().run()
        finally:
            await cancel_and_wait(sweeper)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_PERIOD)
            try:
                await self.collect_finished()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("collecting finished pods failed")

    async def collect_finished(self, threshold: int = TERMINATED_THRESHOLD) -> int:
        """Delete the oldest finished pods beyond ``threshold``; returns how many."""
        finished = [p for p in self.pods.list() if _finished(p) and not is_terminating(p)]
        excess = len(finished) - threshold
        if excess <= 0:
            return 0
        finished.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
        for pod in finished[:excess]:
            await self._delete(pod)
        return excess

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        pod = self.pods.get(ns, name)
        if pod is None:
            return
        node = _node_of(pod)
        if not node:
            if is_terminating(pod):
                await self._delete(pod)
            return
        if self.nodes.get(None, node) is not None:
            return
        try:
            await self.client.get(NODES, node)
            return  # the informer lags: the node is there
        except ApiError as e:
            if e.status != 404:
                raise
        await self._fail(pod, f"node {node} no longer exists")
        await self._delete(pod)
        self.recorder.event(pod, "Normal", "PodGC", f"Deleted pod {key}: its node {node} no longer exists")

    async def _fail(self, pod: Obj, why: str) -> None:
        """Leave the pod's end visible to watchers (Jobs count it as failed) before it goes."""
        if _finished(pod):
            return
        stamp = rfc3339()
        conds = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "DisruptionTarget"]
        conds.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                      "message": f"PodGC: {why}", "lastTransitionTime": stamp})
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta["name"], {"status": {"phase": "Failed", "conditions": conds}},
                                    meta.get("namespace"), subresource="status")
        except ApiError as e:
            if e.status != 404:
                raise

    async def _delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                     preconditions={"uid": meta.get("uid")})
        except ApiError as e:
            if e.status not in (404, 409):
                raise


async def run(ctx: ComponentContext) -> None:
    await PodGCController(ctx).run()
