"""What the controllers benchmark observes: the namespace's pods and Deployments, followed
through watches (informers), with the moment each condition first holds.

Timing from watch events instead of polling keeps the figures honest to within the watch's
delivery delay (milliseconds) without adding a request loop that competes with the control
plane for the same two cores. Per-pod state is reduced to counters updated on each event, so
10,000 pods cost O(1) per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bosun.api.registry import must_by_plural
from bosun.client.informer import Informer, object_key
from bosun.client.rest import Client

Obj = dict[str, Any]


PODS = must_by_plural("", "v1", "pods")
NODES = must_by_plural("", "v1", "nodes")
NAMESPACES = must_by_plural("", "v1", "namespaces")
DEPLOYMENTS = must_by_plural("apps", "v1", "deployments")


@dataclass(frozen=True)
class PodState:
    node: str
    ready: bool  # Running with Ready=True
    terminating: bool
    template: str  # pod-template-hash: which ReplicaSet generation it belongs to


def pod_state(pod: Obj) -> PodState:
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    ready = st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    return PodState(str(spec.get("nodeName") or ""), ready, bool(meta.get("deletionTimestamp")),
                    str((meta.get("labels") or {}).get("pod-template-hash") or ""))


class Tracker:
    """Counts of the namespace's pods by state, the latest Deployment objects, and waits for
    conditions over both."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.pods: dict[str, PodState] = {}
        self.deployments: dict[str, Obj] = {}
        self.excluded: frozenset[str] = frozenset()  # nodes whose pods don't count as "elsewhere"
        self.live = 0  # pods not terminating
        self.ready_elsewhere = 0  # live, Running+Ready, not on an excluded node
        self.peak_live = 0
        self.floor_ready = 0
        self.last: dict[str, float] = {}  # "created"/"bound"/"ready"/"deleted" -> latest moment seen
        self.counts: dict[str, int] = {"created": 0, "bound": 0, "ready": 0, "deleted": 0}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
        self.pod_informer = Informer(client, PODS, namespace)
        self.pod_informer.add_handler(self._pod_add, self._pod_update, self._pod_delete)
        self.deploy_informer = Informer(client, DEPLOYMENTS, namespace)
        self.deploy_informer.add_handler(self._deploy_set, lambda old, new: self._deploy_set(new),
                                         self._deploy_delete)

    async def start(self) -> None:
        for inf in (self.pod_informer, self.deploy_informer):
            await inf.start()
            await inf.wait_synced(60)

    async def stop(self) -> None:
        for inf in (self.pod_informer, self.deploy_informer):
            await inf.stop()

    # -- windows and waits --------------------------------------------------------------------

    def reset_window(self) -> None:
        """Start a new phase: peaks/floors and the latest-moment marks begin afresh."""
        self.peak_live = self.live
        self.floor_ready = self.ready_elsewhere
        self.last = {}
        self.counts = dict.fromkeys(self.counts, 0)

    def exclude(self, nodes: set[str]) -> None:
        """Stop counting pods on ``nodes`` as ready (they are about to die)."""
        self.excluded = frozenset(nodes)
        self.ready_elsewhere = sum(1 for s in self.pods.values() if self._counts_ready(s))
        self.floor_ready = min(self.floor_ready, self.ready_elsewhere)

    async def wait_for(self, cond: Callable[[], bool], within: float) -> float:
        """The moment (perf_counter) ``cond`` first held after an event; TimeoutError otherwise."""
        if cond():
            return time.perf_counter()
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        entry = (cond, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, within)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _check(self) -> None:
        if not self._waiters:
            return
        now = time.perf_counter()
        for cond, fut in list(self._waiters):
            if not fut.done() and cond():
                fut.set_result(now)

    # -- pods ---------------------------------------------------------------------------------

    def _counts_ready(self, s: PodState) -> bool:
        return s.ready and not s.terminating and s.node not in self.excluded

    def _apply(self, key: str, old: PodState | None, new: PodState | None) -> None:
        now = time.perf_counter()
        if old is None and new is not None:
            self._mark("created", now)
        if new is not None and new.node and not (old and old.node):
            self._mark("bound", now)
        if new is not None and new.ready and not (old and old.ready):
            self._mark("ready", now)
        if new is None or (new.terminating and not (old and old.terminating)):
            if old is not None and not old.terminating:
                self._mark("deleted", now)
        self.live += (new is not None and not new.terminating) - (old is not None and not old.terminating)
        self.ready_elsewhere += (new is not None and self._counts_ready(new)) - (
            old is not None and self._counts_ready(old))
        self.peak_live = max(self.peak_live, self.live)
        self.floor_ready = min(self.floor_ready, self.ready_elsewhere)
        if new is None:
            self.pods.pop(key, None)
        else:
            self.pods[key] = new
        self._check()

    def _mark(self, what: str, now: float) -> None:
        self.last[what] = now
        self.counts[what] += 1

    def _pod_add(self, pod: Obj) -> None:
        key = object_key(pod)
        self._apply(key, self.pods.get(key), pod_state(pod))

    def _pod_update(self, old: Obj, new: Obj) -> None:
        self._pod_add(new)

    def _pod_delete(self, pod: Obj) -> None:
        key = object_key(pod)
        self._apply(key, self.pods.get(key), None)

    def on_nodes(self, nodes: set[str]) -> list[str]:
        """Keys of the live pods on ``nodes``."""
        return [k for k, s in self.pods.items() if s.node in nodes and not s.terminating]

    # -- deployments --------------------------------------------------------------------------

    def _deploy_set(self, d: Obj) -> None:
        self.deployments[str(d["metadata"]["name"])] = d
        self._check()

    def _deploy_delete(self, d: Obj) -> None:
        self.deployments.pop(str(d["metadata"]["name"]), None)
        self._check()

    def available(self, name: str) -> int:
        return int(((self.deployments.get(name) or {}).get("status") or {}).get("availableReplicas") or 0)

    def rollout_complete(self, name: str, replicas: int, generation: int) -> bool:
        """What `kubectl rollout status` waits for: the new template everywhere, old pods gone,
        every replica available, as observed by the controller for ``generation`` (the
        template change's; our cached copy may still predate it)."""
        d = self.deployments.get(name)
        if d is None:
            return False
        st = d.get("status") or {}
        return (int(st.get("observedGeneration") or 0) >= generation
                and int(st.get("updatedReplicas") or 0) == replicas
                and int(st.get("replicas") or 0) == replicas
                and int(st.get("availableReplicas") or 0) == replicas)
