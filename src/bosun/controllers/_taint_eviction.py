"""NoExecute taint eviction: pods on a node with a NoExecute taint they do not tolerate are
evicted at once; pods that tolerate it for ``tolerationSeconds`` are evicted when that runs out.

The API's DefaultTolerationSeconds admission gives every new pod a toleration of the
not-ready and unreachable taints for ``pod_eviction_timeout`` seconds (upstream: 300); a pod
stored without one (written before that admission existed) is treated the same way.
Deadlines count from the taint's ``timeAdded``, so a restarted controller keeps them.

Pods evicted from an *unreachable* node are deleted with grace 0: their node agent, the only
one that could finish a graceful deletion, is gone, and their controllers must see them gone
to create replacements.

Run by :mod:`bosun.controllers.nodelifecycle` (it shares the full-disruption verdict), which is
why this module is private rather than a controller of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import NODES, PODS, Controller, Obj, is_terminating, now, parse_time

log = logging.getLogger(__name__)

NODE_INDEX = "taint-eviction-node"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
DEFAULT_TOLERATED = (UNREACHABLE, NOT_READY)
EVICTIONS_IN_FLIGHT = 16


def noexecute_taints(node: Obj) -> list[Obj]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    if (toleration.get("operator") or "Equal") == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def eviction_deadline(pod: Obj, taints: list[Obj], default_seconds: float,
                      added: Callable[[Obj], datetime]) -> datetime | None:
    """When the pod must leave a node with these NoExecute taints; None if it may stay.
    ``added`` gives a taint's timeAdded (or when it was first seen)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    deadline: datetime | None = None
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        seconds: float | None
        if not matching:
            if taint.get("key") not in DEFAULT_TOLERATED:
                return added(taint)  # not tolerated at all: out now
            seconds = default_seconds
        else:
            finite = [float(t["tolerationSeconds"]) for t in matching if t.get("tolerationSeconds") is not None]
            seconds = max(0.0, min(finite)) if finite else None
        if seconds is None:
            continue  # tolerated for ever
        when = added(taint) + timedelta(seconds=seconds)
        if deadline is None or when < deadline:
            deadline = when
    return deadline


class TaintEvictionController(Controller):
    """Keyed by node name: each reconcile looks at the pods of one tainted node."""

    name = "taint-eviction"
    workers = 4

    def __init__(self, ctx: ComponentContext, evictions_allowed: Callable[[], bool] = lambda: True) -> None:
        super().__init__(ctx)
        self.evictions_allowed = evictions_allowed
        self.default_seconds = float(ctx.options.pod_eviction_timeout)
        self.nodes = ctx.informers.get(NODES)
        self.pods = ctx.informers.get(PODS)
        self.pods.add_index(NODE_INDEX, lambda p: [n] if (n := (p.get("spec") or {}).get("nodeName")) else [])
        self._first_seen: dict[tuple[str, str, str], datetime] = {}
        self.nodes.add_handler(self._node_added, self._node_updated)
        self.pods.add_handler(self._pod_changed, lambda old, new: self._pod_changed(new))

    def _node_added(self, node: Obj) -> None:
        if noexecute_taints(node):
            self.queue.add(str(node["metadata"]["name"]))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if noexecute_taints(old) != noexecute_taints(new):
            self.queue.add(str(new["metadata"]["name"]))

    def _pod_changed(self, pod: Obj) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        node = self.nodes.get(None, node_name)
        if node is not None and noexecute_taints(node):
            self.queue.add(str(node_name))

    def _added(self, node_name: str) -> Callable[[Obj], datetime]:
        def fn(taint: Obj) -> datetime:
            when = parse_time(taint.get("timeAdded"))
            if when is not None:
                return when
            key = (node_name, str(taint.get("key")), str(taint.get("value") or ""))
            return self._first_seen.setdefault(key, now())
        return fn

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(None, key)
        taints = noexecute_taints(node) if node is not None else []
        if not taints:
            for k in [k for k in self._first_seen if k[0] == key]:
                del self._first_seen[k]
            return
        if not self.evictions_allowed():
            self.queue.add_after(key, 1.0)  # full disruption: look again once it may be over
            return
        force = any(t.get("key") == UNREACHABLE for t in taints)
        at = now()
        next_check: float | None = None
        added = self._added(key)
        due: list[Obj] = []
        for pod in self.pods.by_index(NODE_INDEX, key):
            deadline = eviction_deadline(pod, taints, self.default_seconds, added)
            if deadline is None:
                continue
            wait = (deadline - at).total_seconds()
            if wait > 0:
                next_check = wait if next_check is None else min(next_check, wait)
            else:
                due.append(pod)
        if next_check is not None:
            self.queue.add_after(key, next_check + 0.05)
        # A dead node's pods all go at once (their replacements wait on it), a few in flight.
        limit = asyncio.Semaphore(EVICTIONS_IN_FLIGHT)

        async def one(pod: Obj) -> None:
            async with limit:
                await self._evict(pod, force)

        results = await asyncio.gather(*(one(p) for p in due), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]  # the queue retries the node (evicted pods are gone from the index)

    async def _evict(self, pod: Obj, force: bool) -> None:
        meta = pod["metadata"]
        name, ns = str(meta["name"]), str(meta.get("namespace"))
        started = time.monotonic()
        try:
            if is_terminating(pod):
                if not force:
                    return  # the node agent is finishing it
                await self.client.delete(PODS, name, ns, grace_period_seconds=0)
            else:
                body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}}
                if force:
                    body["deleteOptions"] = {"gracePeriodSeconds": 0}
                await self.client.create(PODS, body, ns, subresource="eviction")
                self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}")
        except ApiError as e:
            if e.status == 404:
                return
            raise  # e.g. 429 from a disruption budget: the queue retries with back-off
        log.info("evicted pod %s/%s from tainted node %s in %.3fs", ns, name,
                 (pod.get("spec") or {}).get("nodeName"), time.monotonic() - started)
