"""The scheduling loop: informers feed the snapshot and the queue; each pod taken from the
queue is filtered and scored against the snapshot, assumed on the chosen node and handed to
the binder, without waiting for the API in between."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np

from bosun.api.registry import Resource, must_by_plural
from bosun.component import ComponentContext
from bosun.scheduler import preemption, strategies
from bosun.scheduler.binder import Binder
from bosun.scheduler.framework import CycleState, run_filters
from bosun.scheduler.plugins import default_filters
from bosun.scheduler.plugins.constraints import parse_constraints
from bosun.scheduler.plugins.volumebinding import SELECTED_NODE, VolumeBinding
from bosun.scheduler.podinfo import CONSTRAINTS_ANNOTATION, STRATEGY_ANNOTATION, PodInfo, PodSpecError, parse_pod
from bosun.scheduler.queue import SchedulingQueue
from bosun.scheduler.report import Reporter
from bosun.scheduler.snapshot import Snapshot

log = logging.getLogger(__name__)
Obj = dict[str, Any]
SCHEDULER_NAME = "default-scheduler"
BATCH = 256
YIELD_EVERY = 32


def _res(group: str, plural: str) -> Resource:
    return must_by_plural(group, "v1", plural)


PODS = _res("", "pods")
NODES = _res("", "nodes")
PRIORITY_CLASSES = _res("scheduling.k8s.io", "priorityclasses")
PVCS = _res("", "persistentvolumeclaims")
PVS = _res("", "persistentvolumes")
STORAGE_CLASSES = _res("storage.k8s.io", "storageclasses")


def _key(obj: Obj) -> str:
    m = obj.get("metadata") or {}
    return f"{m.get('namespace')}/{m.get('name')}"


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _ours(pod: Obj) -> bool:
    """Pending, not being deleted, and addressed to this scheduler."""
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and spec.get("schedulerName", SCHEDULER_NAME) in (SCHEDULER_NAME, "")
            and not (pod.get("metadata") or {}).get("deletionTimestamp") and not _terminal(pod))


def _scheduling_inputs_changed(old: Obj, new: Obj) -> bool:
    """Whether an update to a pending pod could change where it fits (status writes cannot)."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return (old.get("spec") != new.get("spec") or om.get("labels") != nm.get("labels")
            or om.get("annotations") != nm.get("annotations"))


class Scheduler:
    def __init__(self, ctx: ComponentContext, *, seed: int | None = None) -> None:
        self.ctx = ctx
        self.default_strategy = ctx.options.scheduling_strategy
        self.snap = Snapshot()
        self.queue = SchedulingQueue()
        claims, volumes = ctx.informers.get(PVCS), ctx.informers.get(PVS)
        storage_classes = ctx.informers.get(STORAGE_CLASSES)
        self.volumes = VolumeBinding(claims, volumes, storage_classes)
        self.filters = default_filters(self.snap, self.volumes)
        self.rng = np.random.default_rng(seed)
        self.priorities: dict[str, int] = {}
        self.default_priority = 0
        self.preempting: dict[str, set[str]] = {}  # preemptor key -> victims not yet gone
        self.reporter = Reporter(ctx.client, PODS, ctx.recorder(SCHEDULER_NAME))
        self.binder = Binder(ctx.client, PODS, self._bound, lambda name: name in self.snap.index)
        self.pods = ctx.informers.get(PODS)
        self.nodes = ctx.informers.get(NODES)
        self.classes = ctx.informers.get(PRIORITY_CLASSES)
        self.nodes.add_handler(self._node_added, lambda _o, n: self._node_added(n), self._node_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.classes.add_handler(self._class_changed, lambda _o, n: self._class_changed(n),
                                 lambda o: self._class_changed(o, deleted=True))
        # A claim, volume or class change may let a pod waiting on its volumes fit (pods
        # without claims never wait on these, and these objects change rarely).
        claims.add_handler(self._claim_changed, lambda _o, n: self._claim_changed(n), self._claim_deleted)
        volumes.add_handler(self._volumes_changed, lambda _o, _n: self._volumes_changed())
        storage_classes.add_handler(self._volumes_changed, lambda _o, _n: self._volumes_changed())

    # ---- informer handlers ------------------------------------------------------------------

    def _node_added(self, node: Obj) -> None:
        if self.snap.set_node(node):
            self.queue.move_all()

    def _node_deleted(self, node: Obj) -> None:
        self.snap.remove_node(str((node.get("metadata") or {}).get("name") or ""))

    def _claim_changed(self, pvc: Obj) -> None:
        self.volumes.claim_changed(pvc)
        self.queue.move_all()

    def _claim_deleted(self, pvc: Obj) -> None:
        self.volumes.claim_deleted(pvc)
        self.queue.move_all()

    def _volumes_changed(self, _obj: Obj | None = None) -> None:
        self.queue.move_all()

    def _class_changed(self, pc: Obj, deleted: bool = False) -> None:
        name = str((pc.get("metadata") or {}).get("name") or "")
        if deleted:
            self.priorities.pop(name, None)
        else:
            self.priorities[name] = int(pc.get("value") or 0)
        if pc.get("globalDefault"):
            self.default_priority = 0 if deleted else int(pc.get("value") or 0)

    def _priority(self, pod: Obj) -> int:
        spec = pod.get("spec") or {}
        if spec.get("priority") is not None:
            return int(spec["priority"])
        name = spec.get("priorityClassName")
        return self.priorities.get(str(name), 0) if name else self.default_priority

    def _parse(self, pod: Obj) -> PodInfo | None:
        try:
            info = parse_pod(pod, self.priorities)
        except (PodSpecError, ValueError, TypeError):
            return None
        info.priority = self._priority(pod)
        return info

    def _pod_added(self, pod: Obj) -> None:
        self._pod_changed(None, pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(old, new)

    def _pod_changed(self, old: Obj | None, pod: Obj) -> None:
        key = _key(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.queue.done(key)
            if _terminal(pod):
                if self.snap.remove_pod(key) is not None:
                    self._freed(key)
                return
            before = self.snap.pods.get(key)
            if before is not None and self.snap.pod_node.get(key) == node and before.parsed_from(pod):
                self.snap.add_pod(before, str(node))  # the binding confirmed, or a status write
                return
            info = self._parse(pod)
            if info is None:
                return
            self.snap.add_pod(info, str(node))
            if before is not None and before.labels != info.labels:
                self.queue.move_all()  # affinity and spread may now be satisfiable
            return
        if key in self.snap.assumed:
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                self.snap.remove_pod(key)
            return  # its binding is in flight
        if not _ours(pod):
            self.queue.delete(key)
            return
        if old is None or _scheduling_inputs_changed(old, pod):
            self.queue.add(key, self._priority(pod))

    def _pod_deleted(self, pod: Obj) -> None:
        key = _key(pod)
        self.queue.delete(key)
        self.preempting.pop(key, None)
        if self.snap.remove_pod(key) is not None:
            self._freed(key)

    def _freed(self, key: str) -> None:
        for victims in self.preempting.values():
            victims.discard(key)
        self.queue.move_all()

    # ---- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        await self.ctx.informers.start()
        try:
            while True:
                batch = await self.queue.pop_batch(BATCH)
                for i, key in enumerate(batch):
                    try:
                        self.schedule_one(key)
                    except Exception:
                        log.exception("scheduling %s failed", key)
                        self.queue.retry(key)
                    if i % YIELD_EVERY == YIELD_EVERY - 1:
                        await asyncio.sleep(0)  # let informers and bindings progress
                await asyncio.sleep(0)
        finally:
            await self.binder.close()
            await self.reporter.close()

    def _strategy(self, pod: Obj) -> strategies.Strategy:
        name = ((pod.get("metadata") or {}).get("annotations") or {}).get(STRATEGY_ANNOTATION) or self.default_strategy
        try:
            return strategies.get(name)
        except KeyError:
            raise PodSpecError(f'unknown scheduling strategy "{name}" in annotation {STRATEGY_ANNOTATION} '
                               f"(want one of {', '.join(strategies.NAMES)})") from None

    def _validate(self, pod: Obj) -> tuple[PodInfo, strategies.Strategy]:
        info = parse_pod(pod, self.priorities)
        info.priority = self._priority(pod)
        strategy = self._strategy(pod)
        if CONSTRAINTS_ANNOTATION in info.annotations:
            parse_constraints(info.annotations[CONSTRAINTS_ANNOTATION])
        return info, strategy

    def schedule_one(self, key: str) -> None:
        pod = self.pods.get_by_key(key)
        if pod is None or not _ours(pod):
            self.queue.done(key)
            return
        try:
            info, strategy = self._validate(pod)
        except PodSpecError as exc:
            self.reporter.failed(pod, str(exc), reason="Unschedulable")
            self.queue.unschedulable(key)
            return
        state = CycleState()
        feasible, diag = run_filters(info, self.snap, self.filters, state)
        if not feasible.any():
            message = diag.message()
            nominated = self._preempt(pod, info, diag)
            self.reporter.failed(pod, message, nominated=nominated)
            self.queue.unschedulable(key)
            return
        idx = strategies.pick(strategy, info, self.snap, feasible, state, self.rng)
        node = self.snap.names[idx]
        self.snap.add_pod(info, node, assumed=True)
        if info.claims:
            for claim in self.volumes.assume(info, node, state):
                self.reporter._spawn(self._select_node(info.namespace, claim, node))
        self.binder.submit(pod, node)

    async def _select_node(self, namespace: str, claim: str, node: str) -> None:
        """Tell the provisioner where the claim's first consumer goes (Kubernetes' PreBind)."""
        try:
            await self.ctx.client.patch(PVCS, claim, {"metadata": {"annotations": {SELECTED_NODE: node}}},
                                        namespace)
        except Exception as exc:  # the provisioner falls back to the bound pod's node
            log.debug("could not select node %s for claim %s/%s: %s", node, namespace, claim, exc)

    def _preempt(self, pod: Obj, info: PodInfo, diag: Any) -> str:
        pending = self.preempting.get(info.key)
        if pending:
            return (pod.get("status") or {}).get("nominatedNodeName") or ""  # victims still leaving
        chosen = preemption.plan(info, self.snap, diag, self.filters)
        if chosen is None:
            return ""
        uid = (pod.get("metadata") or {}).get("uid", "")
        self.preempting[info.key] = {v.key for v in chosen.victims}
        for v in chosen.victims:
            victim = self.pods.get_by_key(v.key)
            if victim is not None:
                self.reporter.event(victim, "Normal", "Preempted", f"Preempted by pod {uid} on node {chosen.node}")
            self.reporter._spawn(self._delete(v))
        return chosen.node

    async def _delete(self, victim: PodInfo) -> None:
        try:
            await self.ctx.client.delete(PODS, victim.name, victim.namespace)
        except Exception as exc:  # it may be gone already
            log.debug("could not preempt %s: %s", victim.key, exc)

    # ---- binding results ------------------------------------------------------------------------

    def _bound(self, pod: Obj, node: str, error: Exception | None) -> None:
        key = _key(pod)
        if error is None:
            self.queue.done(key)
            self.reporter.scheduled(pod, node)
            return
        if key in self.snap.assumed and self.snap.node_of(key) == node:
            self.snap.remove_pod(key)
        current = self.pods.get_by_key(key)
        if current is None or not _ours(current):
            self.queue.done(key)
            return
        self.reporter.event(current, "Warning", "FailedScheduling", f"Binding rejected: {error}")
        self.queue.retry(key)
