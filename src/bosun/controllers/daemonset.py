"""DaemonSet controller: one pod on every node the DaemonSet's pod may run on.

Placement is decided here (node selector, required node affinity, taints against the
pod's tolerations plus the ones Kubernetes gives every daemon); each pod is pinned to its
node by required node affinity and the scheduler binds it. Nodes joining, leaving or being
relabelled or tainted move pods accordingly; template changes roll out node by node within
maxUnavailable (or maxSurge).

Pods are created with generated names, so the informer may lag behind our own writes: the
controller remembers what it created and deleted ("expectations", as in Kubernetes) and
does not act on a DaemonSet again until the informer has caught up, so it never makes
duplicate pods.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import (
    NODES,
    PODS,
    Controller,
    index_by_controller_uid,
    is_terminating,
    key_of,
    next_available_in,
    owner_key,
    pod_from_template,
    resource,
    split_key,
)
from bosun.controllers.controller_revisions import HASH_LABEL, REVISIONS, RevisionHistory
from bosun.controllers.daemonset_nodes import pin_to_node, placement, target_node
from bosun.controllers.daemonset_rollout import by_age, daemon_status, plan_rollout, pod_hash

log = logging.getLogger(__name__)
Obj = dict[str, Any]

DAEMONSETS = resource("apps", "v1", "daemonsets")
EXPECTATION_TTL = 15.0  # seconds after which a write the informer never showed is forgotten
FAILED_BACKOFF = (1.0, 60.0)


@dataclass
class _Expectations:
    adds: set[str] = field(default_factory=set)      # pod names created, not yet seen
    deletes: set[str] = field(default_factory=set)   # pod uids deleted, not yet seen gone
    since: float = field(default_factory=time.monotonic)

    def satisfied(self) -> bool:
        return (not self.adds and not self.deletes) or time.monotonic() - self.since > EXPECTATION_TTL


class DaemonSetController(Controller):
    name = "daemonset"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.sets = ctx.informers.get(DAEMONSETS)
        self.pods = ctx.informers.get(PODS)
        self.nodes = ctx.informers.get(NODES)
        self.history = RevisionHistory(self.client, ctx.informers.get(REVISIONS))
        self.expectations: dict[str, _Expectations] = {}
        self.failed_backoff: dict[str, tuple[float, float]] = {}  # "ds-uid/node" -> (until, delay)
        index_by_controller_uid(self.pods)
        self.sets.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self._set_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes.add_handler(self._node_changed, self._node_updated, self._node_changed)

    # -- event handlers ----------------------------------------------------------------------

    def _pod_added(self, pod: Obj) -> None:
        key = owner_key(pod, "DaemonSet")
        if key is not None:
            exp = self.expectations.get(key)
            if exp is not None:
                exp.adds.discard(pod["metadata"].get("name", ""))
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = owner_key(new, "DaemonSet")
        if key is not None:
            exp = self.expectations.get(key)
            if exp is not None and is_terminating(new):
                exp.deletes.discard(new["metadata"].get("uid", ""))  # a graceful delete has been seen
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = owner_key(pod, "DaemonSet")
        if key is not None:
            exp = self.expectations.get(key)
            if exp is not None:
                exp.deletes.discard(pod["metadata"].get("uid", ""))
            self.queue.add(key)

    def _set_deleted(self, ds: Obj) -> None:
        self.expectations.pop(key_of(ds), None)

    def _node_changed(self, node: Obj) -> None:
        self.enqueue_all(self.sets.list())

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # Heartbeats change status every few seconds; only what decides placement matters.
        def shape(n: Obj) -> tuple[Any, ...]:
            spec = n.get("spec") or {}
            return ((n.get("metadata") or {}).get("labels"), spec.get("taints"), spec.get("unschedulable"))
        if shape(old) != shape(new):
            self._node_changed(new)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        ds = self.sets.get(ns, name)
        if ds is None:
            self.expectations.pop(key, None)
            return
        if is_terminating(ds):
            return
        status = ds.get("status") or {}
        template = (ds.get("spec") or {}).get("template") or {}
        revision, collisions = await self.history.ensure(ds, template, int(status.get("collisionCount") or 0))
        current_hash = str((revision["metadata"].get("labels") or {}).get(HASH_LABEL) or "")
        pod_spec = template.get("spec") or {}

        retry: list[float] = []
        exp = self.expectations.get(key)
        if exp is None or exp.satisfied():
            self.expectations.pop(key, None)
            await self._manage(ds, pod_spec, current_hash, retry)
        on_node, should_run = self._layout(ds, pod_spec)
        st = daemon_status(ds, should_run, on_node, current_hash)
        await self.patch_status(DAEMONSETS, ds, {**st, "collisionCount": collisions,
                                                 "observedGeneration": ds["metadata"].get("generation", 1)})
        live = {f"{name}-{pod_hash(p)}" for pods in on_node.values() for p in pods} | {revision["metadata"]["name"]}
        await self.history.prune(ds, live, int((ds.get("spec") or {}).get("revisionHistoryLimit") or 10))
        wait = next_available_in((p for pods in on_node.values() for p in pods),
                                 int((ds.get("spec") or {}).get("minReadySeconds") or 0))
        if wait is not None:
            retry.append(wait + 0.1)
        if retry:
            self.queue.add_after(key, min(retry))

    def _layout(self, ds: Obj, pod_spec: Obj) -> tuple[dict[str, list[Obj]], dict[str, bool]]:
        """Live daemon pods by target node, and whether each existing node should run one."""
        on_node: dict[str, list[Obj]] = {}
        for pod in self.pods.by_index("controller-uid", ds["metadata"]["uid"]):
            node = target_node(pod)
            if node is not None and not is_terminating(pod):
                on_node.setdefault(node, []).append(pod)
        should_run = {n["metadata"]["name"]: placement(pod_spec, n)[0] for n in self.nodes.list()}
        return on_node, should_run

    async def _manage(self, ds: Obj, pod_spec: Obj, current_hash: str, retry: list[float]) -> None:
        """Create and delete pods so that each node has what it should, then roll out."""
        uid = ds["metadata"]["uid"]
        owned = self.pods.by_index("controller-uid", uid)
        on_node: dict[str, list[Obj]] = {}
        homeless: list[Obj] = []
        for pod in owned:
            if is_terminating(pod):
                continue
            target = target_node(pod)
            if target is None or self.nodes.get(None, target) is None:
                homeless.append(pod)
            else:
                on_node.setdefault(target, []).append(pod)
        rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        surge = rolling and _max_surge_set(ds)

        create: list[str] = []
        delete: list[Obj] = []
        # Pods of a node that is gone go at once: nobody will ever stop their containers.
        force_delete: list[Obj] = list(homeless)
        desired: dict[str, list[Obj]] = {}
        for node in self.nodes.list():
            node_name = node["metadata"]["name"]
            run, keep = placement(pod_spec, node)
            pods = on_node.get(node_name) or []
            if run and not pods:
                create.append(node_name)
            elif keep:
                failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
                if failed:
                    wait = self._failed_backoff(f"{uid}/{node_name}")
                    if wait > 0:
                        retry.append(wait)
                    else:
                        delete.extend(failed)
                running = by_age([p for p in pods if p not in failed])
                delete.extend(_excess(running, current_hash, surge))
                if run:
                    desired[node_name] = [p for p in running if p not in delete]
            else:
                delete.extend(pods)
        if rolling and not create and not delete:
            old_out, surge_nodes = plan_rollout(ds, desired, current_hash)
            delete.extend(old_out)
            create.extend(surge_nodes)
        await self._sync(ds, pod_spec, current_hash, create, delete, force_delete)

    def _failed_backoff(self, key: str) -> float:
        """Seconds to wait before replacing a failed pod again on this node (no hot loop
        when a daemon keeps crashing)."""
        t = time.monotonic()
        until, delay = self.failed_backoff.get(key, (0.0, 0.0))
        if t < until:
            return until - t
        delay = min(FAILED_BACKOFF[1], max(FAILED_BACKOFF[0], delay * 2))
        self.failed_backoff[key] = (t + delay, delay)
        return 0.0

    async def _sync(self, ds: Obj, pod_spec: Obj, current_hash: str, create: list[str], delete: list[Obj],
                    force_delete: list[Obj]) -> None:
        key = key_of(ds)
        exp = self.expectations.setdefault(key, _Expectations())
        exp.since = time.monotonic()
        ns = ds["metadata"]["namespace"]
        template = (ds.get("spec") or {}).get("template") or {}
        generation = str(ds["metadata"].get("generation", 1))
        # Deletions first: a surging rollout never has more than maxSurge extra live pods.
        for pod, grace in [(p, None) for p in delete] + [(p, 0) for p in force_delete]:
            m = pod["metadata"]
            try:
                await self.client.delete(PODS, m["name"], ns, grace_period_seconds=grace,
                                         preconditions={"uid": m["uid"]})
            except ApiError as e:
                if e.status in (404, 409):
                    continue
                self.recorder.event(ds, "Warning", "FailedDelete", f"Error deleting: {e}")
                raise
            self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {m['name']}")
            cached = self.pods.get(ns, m["name"])
            if cached is not None and cached["metadata"].get("uid") == m["uid"] and not is_terminating(cached):
                exp.deletes.add(m["uid"])
        for node_name in create:
            pod = pod_from_template(template, ds, extra_labels={
                "controller-revision-hash": current_hash, "pod-template-generation": generation})
            pod["spec"] = pin_to_node(pod_spec, node_name)
            try:
                made = await self.client.create(PODS, pod, ns)
            except ApiError as e:
                self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {e}")
                raise
            self.recorder.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {made['metadata']['name']}")
            if self.pods.get(ns, made["metadata"]["name"]) is None:
                exp.adds.add(made["metadata"]["name"])


def _max_surge_set(ds: Obj) -> bool:
    ru = (((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")) or {}
    surge = ru.get("maxSurge")
    return surge not in (None, 0, "0", "0%")


def _excess(running: list[Obj], current_hash: str, surge: bool) -> list[Obj]:
    """Extra daemon pods on one node: keep the oldest (with surge, the oldest new and the
    oldest old, which a rolling update is replacing)."""
    if len(running) <= 1:
        return []
    if not surge:
        return running[1:]
    keep: list[Obj] = []
    new = [p for p in running if pod_hash(p) == current_hash]
    old = [p for p in running if pod_hash(p) != current_hash]
    keep.extend(new[:1])
    keep.extend(old[:1])
    return [p for p in running if p not in keep]


async def run(ctx: ComponentContext) -> None:
    await DaemonSetController(ctx).run()
