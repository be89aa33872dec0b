"""Node lifecycle controller: notices nodes that stopped heartbeating and taints them, so that
their pods are evicted (see :mod:`bosun.controllers._taint_eviction`) and replaced elsewhere.

A node agent proves it is alive by renewing its Lease ``kube-node-lease/<node>``. This
controller remembers, on its own monotonic clock, when it last *saw* each Lease (or the node's
Ready heartbeat) change — never the timestamp written in it, so clock skew between machines
cannot kill or revive a node. A node silent for longer than ``node_monitor_grace_period`` gets
Ready=Unknown and the ``node.kubernetes.io/unreachable`` taints; a node whose agent reports
Ready=False gets ``node.kubernetes.io/not-ready``. The leases are checked by one sweep a second
over that in-memory map: a clock-driven check, not API polling.

A NoExecute taint's ``timeAdded`` is when the failure began, not when it was noticed: the
moment the node was last heard from (unreachable) or its Ready condition turned False
(not-ready). Tolerations, and so ``pod_eviction_timeout``, therefore count from the failure,
and a node's death costs max(grace, timeout) before its pods are replaced rather than the sum
(10 s with the defaults, inside the 15 s the project aims at).

When most of the cluster looks down at once, the control plane is more likely cut off from the
nodes than the nodes all dead: then no NoExecute taint is placed (no pod is evicted) until
enough nodes are back — Kubernetes' full-disruption mode.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bosun.aio import cancel_and_wait
from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import NODES, Controller, Obj, now, parse_time, resource, rfc3339

log = logging.getLogger(__name__)

LEASES = resource("coordination.k8s.io", "v1", "leases")
LEASE_NAMESPACE = "kube-node-lease"

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# Conditions whose True value keeps new pods away (Kubernetes' TaintNodesByCondition).
CONDITION_TAINTS = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
    "NetworkUnavailable": "node.kubernetes.io/network-unavailable",
}
MANAGED_TAINT_KEYS = frozenset({UNREACHABLE, NOT_READY, UNSCHEDULABLE, *CONDITION_TAINTS.values()})
# The conditions a silent node can no longer vouch for.
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_REASON = "NodeStatusNeverUpdated"
NEVER_MESSAGE = "Kubelet never posted node status."
RESTORED_REASON = "NodeStatusRestored"

# Full disruption: more than this share of the nodes, and at least MIN_DISRUPTED of them.
DISRUPTION_SHARE = 0.55
MIN_DISRUPTED = 3
# NoExecute taints (each one starts evictions on a node) are added at most this fast.
TAINT_QPS = 10.0


# ---- pure functions over Node objects -----------------------------------------------------

def ready_status(node: Obj) -> str:
    """"True", "False" or "Unknown" (a node that never reported counts as Unknown)."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status") or "Unknown")
    return "Unknown"


def _ready_condition(node: Obj) -> Obj:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return dict(c)
    return {}


def _heartbeat(node: Obj) -> str:
    return str(_ready_condition(node).get("lastHeartbeatTime") or "")


def mark_unknown(node: Obj, stamp: str) -> bool:
    """Set the monitored conditions to Unknown in place (as Kubernetes does for a node that
    stopped posting status); lastHeartbeatTime keeps the agent's last word. Returns whether
    anything changed."""
    status = node.setdefault("status", {})
    conds = [dict(c) for c in status.get("conditions") or []]
    by_type = {c.get("type"): c for c in conds}
    changed = False
    for kind in MONITORED_CONDITIONS:
        c = by_type.get(kind)
        if c is None:
            conds.append({"type": kind, "status": "Unknown", "reason": NEVER_REASON, "message": NEVER_MESSAGE,
                          "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
            changed = True
        elif c.get("status") != "Unknown":
            c.update(status="Unknown", reason=UNKNOWN_REASON, message=UNKNOWN_MESSAGE, lastTransitionTime=stamp)
            changed = True
    status["conditions"] = conds
    return changed


def restore_conditions(node: Obj, stamp: str) -> bool:
    """Undo :func:`mark_unknown` for a node whose agent is heartbeating again: the conditions
    this controller made Unknown go back to healthy until the agent posts its own. Returns
    whether anything changed."""
    conds = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    changed = False
    for c in conds:
        if c.get("type") in MONITORED_CONDITIONS and c.get("status") == "Unknown" \
                and c.get("reason") in (UNKNOWN_REASON, NEVER_REASON):
            healthy = "True" if c.get("type") == "Ready" else "False"
            c.update(status=healthy, reason=RESTORED_REASON, lastTransitionTime=stamp,
                     message="Node lease renewed again: the node agent is back.")
            changed = True
    if changed:
        node.setdefault("status", {})["conditions"] = conds
    return changed


def wanted_taints(node: Obj, *, evictions_allowed: bool) -> set[tuple[str, str]]:
    """The (key, effect) taints this controller wants on ``node`` given its conditions."""
    out: set[tuple[str, str]] = set()
    ready = ready_status(node)
    key = {"False": NOT_READY, "Unknown": UNREACHABLE}.get(ready)
    if key is not None:
        out.add((key, "NoSchedule"))
        if evictions_allowed:
            out.add((key, "NoExecute"))
    if (node.get("spec") or {}).get("unschedulable"):
        out.add((UNSCHEDULABLE, "NoSchedule"))
    for c in (node.get("status") or {}).get("conditions") or []:
        taint = CONDITION_TAINTS.get(str(c.get("type")))
        if taint is not None and c.get("status") == "True":
            out.add((taint, "NoSchedule"))
    return out


def apply_taints(node: Obj, wanted: set[tuple[str, str]], stamp: str,
                 may_add_noexecute: bool = True) -> list[Obj] | None:
    """The node's new taint list (others' taints untouched, ours as ``wanted``), or None when
    nothing changes. NoExecute taints carry timeAdded: evictions count from it."""
    current = list((node.get("spec") or {}).get("taints") or [])
    kept = [t for t in current
            if t.get("key") not in MANAGED_TAINT_KEYS or (t.get("key"), t.get("effect")) in wanted]
    have = {(t.get("key"), t.get("effect")) for t in kept}
    for key, effect in sorted(wanted - have):
        if effect == "NoExecute" and not may_add_noexecute:
            continue
        taint: Obj = {"key": key, "effect": effect}
        if effect == "NoExecute":
            taint["timeAdded"] = stamp
        kept.append(taint)
    return None if kept == current else kept


# ---- health bookkeeping -------------------------------------------------------------------

@dataclass
class Health:
    probe: float  # monotonic time of the last sign of life seen (or of first sight)
    renew_time: str = ""
    heartbeat: str = ""
    renewed: bool = False  # a renewal was really seen (not just the state found at start)


class TokenBucket:
    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> float:
        """0 if a token was taken, else the seconds until one is available."""
        t = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (t - self.at) * self.qps)
        self.at = t
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.qps


class NodeLifecycleController(Controller):
    name = "node-lifecycle"
    workers = 4

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.grace = float(ctx.options.node_monitor_grace_period)
        self.nodes = ctx.informers.get(NODES)
        self.leases = ctx.informers.get(LEASES)
        self.health: dict[str, Health] = {}
        self.disrupted = False
        self.disruption_ended = 0.0  # wall clock; evictions count from no earlier than this
        self.taint_bucket = TokenBucket(TAINT_QPS, int(TAINT_QPS))
        self.nodes.add_handler(self._node_seen, lambda old, new: self._node_seen(new), self._node_gone)
        self.leases.add_handler(lambda lease: self._lease_seen(lease, True),
                                lambda old, new: self._lease_seen(new, False))

    # -- signs of life ------------------------------------------------------------------------

    def _entry(self, name: str) -> Health:
        h = self.health.get(name)
        if h is None:
            h = self.health[name] = Health(probe=time.monotonic())
        return h

    def _node_seen(self, node: Obj) -> None:
        name = str(node["metadata"]["name"])
        h = self._entry(name)
        beat = _heartbeat(node)
        if beat and beat != h.heartbeat:
            if h.heartbeat and ready_status(node) != "Unknown":
                h.probe = time.monotonic()  # the agent posted status: alive
            h.heartbeat = beat
        self.queue.add(name)

    def _node_gone(self, node: Obj) -> None:
        self.health.pop(str(node["metadata"]["name"]), None)

    def _lease_seen(self, lease: Obj, added: bool) -> None:
        meta = lease.get("metadata") or {}
        if meta.get("namespace") != LEASE_NAMESPACE:
            return
        name = str(meta.get("name"))
        renew = str((lease.get("spec") or {}).get("renewTime") or "")
        h = self._entry(name)
        if renew == h.renew_time:
            return
        first = not h.renew_time
        h.renew_time = renew
        if first and added:
            # Found (at start, or a new node's first Lease): it counts as a renewal only if
            # it is fresh by the writer's clock.
            when = parse_time(renew)
            if when is None or (now() - when).total_seconds() > self.grace:
                return
        h.probe = time.monotonic()
        h.renewed = True
        node = self.nodes.get(None, name)
        if node is not None and ready_status(node) == "Unknown":
            self.queue.add(name)  # back: restore its conditions (healthy nodes cost nothing)

    def stale(self, name: str) -> bool:
        h = self.health.get(name)
        return h is not None and time.monotonic() - h.probe > self.grace

    # -- the clock ----------------------------------------------------------------------------

    async def run(self) -> None:
        await self.ctx.informers.start()
        sweeper = asyncio.create_task(self._sweep_loop(), name="node-lifecycle-sweep")
        try:
            await super().run()
        finally:
            await cancel_and_wait(sweeper)

    async def _sweep_loop(self) -> None:
        period = max(0.1, min(1.0, self.grace / 4))
        while True:
            await asyncio.sleep(period)
            try:
                self.sweep()
            except Exception:
                log.exception("node health sweep failed")

    def sweep(self) -> None:
        """Queue nodes that fell silent, and switch full-disruption mode on or off."""
        nodes = self.nodes.list()
        unhealthy = []
        for node in nodes:
            name = str(node["metadata"]["name"])
            if self.stale(name):
                unhealthy.append(node)
                if ready_status(node) != "Unknown":
                    self.queue.add(name)
            elif ready_status(node) != "True":
                unhealthy.append(node)
        disrupted = len(unhealthy) >= MIN_DISRUPTED and len(unhealthy) > DISRUPTION_SHARE * len(nodes)
        if disrupted != self.disrupted:
            self.disrupted = disrupted
            if not disrupted:
                self.disruption_ended = time.time()
            self._announce(disrupted, unhealthy, len(nodes))
            for node in nodes:
                self.queue.add(str(node["metadata"]["name"]))

    def _announce(self, disrupted: bool, unhealthy: list[Obj], total: int) -> None:
        if disrupted:
            msg = (f"{len(unhealthy)} of {total} nodes are unhealthy at once: the control plane is more likely cut "
                   "off from them than they are all down, so no pods are evicted until fewer are unhealthy")
            log.warning("entering full-disruption mode: %s", msg)
            for node in unhealthy:
                self.recorder.event(node, "Warning", "FullDisruption", msg)
        else:
            log.warning("leaving full-disruption mode: %d of %d nodes unhealthy", len(unhealthy), total)
            for node in unhealthy:
                self.recorder.event(node, "Normal", "DisruptionEnded",
                                    f"{len(unhealthy)} of {total} nodes unhealthy: pod eviction resumes")

    # -- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        try:
            await self._reconcile(key)
        except ApiError as e:
            if e.status != 409:
                raise
            # The agent wrote the node meanwhile; its update event brings the fresh copy.
            log.debug("node %s changed while being updated; again shortly", key)
            self.queue.add_after(key, 0.1)

    async def _reconcile(self, key: str) -> None:
        node = self.nodes.get(None, key)
        if node is None:
            return
        h = self._entry(key)
        stamp = rfc3339()
        if self.stale(key) and ready_status(node) != "Unknown" and await self._lease_moved(key, h):
            self.queue.add(key)  # the cache was behind, not the node: look again with fresh data
            return
        if self.stale(key):
            updated = copy.deepcopy(node)
            if mark_unknown(updated, stamp):
                node = await self._put_status(updated)
                self.recorder.event(node, "Normal", "NodeNotReady", f"Node {key} status is now: NodeNotReady")
        elif h.renewed and ready_status(node) == "Unknown":
            updated = copy.deepcopy(node)
            if restore_conditions(updated, stamp):
                node = await self._put_status(updated)
                self.recorder.event(node, "Normal", "NodeReady", f"Node {key} status is now: NodeReady")
        await self._sync_taints(node)

    async def _lease_moved(self, name: str, h: Health) -> bool:
        """Before declaring a node dead, ask the API for its Lease once: under load the watch
        can lag seconds behind, and a lagging cache must not cost a node its pods. Comparing
        renewTime with the last one seen needs no trust in anyone's clock."""
        try:
            lease = await self.client.get(LEASES, name, LEASE_NAMESPACE)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        renew = str((lease.get("spec") or {}).get("renewTime") or "")
        if not renew or renew == h.renew_time:
            return False
        h.renew_time = renew
        h.probe = time.monotonic()
        h.renewed = True
        return True

    async def _put_status(self, node: Obj) -> Obj:
        return await self.client.update(NODES, node, subresource="status")  # 409: retried

    def _failed_since(self, node: Obj) -> str:
        """When the node's failure began (see the module docstring), rounded up to the
        second (timeAdded has one-second resolution: never evict early)."""
        name = str(node["metadata"]["name"])
        when = time.time()
        if ready_status(node) == "False":
            since = parse_time(_ready_condition(node).get("lastTransitionTime"))
            if since is not None:
                when = min(when, since.timestamp())
        elif name in self.health:
            when -= max(0.0, time.monotonic() - self.health[name].probe)
        when = max(when, self.disruption_ended)
        return rfc3339(datetime.fromtimestamp(math.ceil(when), UTC))

    async def _sync_taints(self, node: Obj) -> None:
        wanted = wanted_taints(node, evictions_allowed=not self.disrupted)
        have = {(t.get("key"), t.get("effect")) for t in (node.get("spec") or {}).get("taints") or []}
        may_add = True
        if any(e == "NoExecute" and (k, e) not in have for k, e in wanted):
            wait = self.taint_bucket.take()
            if wait > 0:
                may_add = False
                self.queue.add_after(str(node["metadata"]["name"]), wait)
        taints = apply_taints(node, wanted, self._failed_since(node), may_add)
        if taints is None:
            return
        updated = copy.deepcopy(node)
        updated.setdefault("spec", {})["taints"] = taints
        if not taints:
            updated["spec"].pop("taints")
        try:
            await self.client.update(NODES, updated)
        except ApiError as e:
            if e.status == 404:
                return
            raise


# ---- the component ------------------------------------------------------------------------

async def run(ctx: ComponentContext) -> None:
    from bosun.controllers._taint_eviction import TaintEvictionController

    lifecycle = NodeLifecycleController(ctx)
    eviction = TaintEvictionController(ctx, evictions_allowed=lambda: not lifecycle.disrupted)
    await asyncio.gather(lifecycle.run(), eviction.run())
