"""Node IPAM: each Node gets its own slice (a /24 by default) of the cluster CIDR as
``spec.podCIDR``, which its agent waits for before it starts any pod.

Why reservations are API objects: a control plane may be several servers on one etcd, and
during a leadership hand-over two of them may act at once. Every allocated block is one
Lease ``kube-system/pod-cidr-<a-b-c-d-len>`` (holder: the node's name; owner reference: the
Node, so the garbage collector removes it even if this controller misses the deletion),
created with create-if-absent: whoever creates it first owns the block, the other gets a
409 and tries the next. A Lease because ``kubectl get leases -n kube-system`` then shows
each block's holder, and it carries no data a node could read (nodes may not read Leases
outside kube-node-lease). The Node write is guarded by its resourceVersion, so two servers
cannot give one node two different blocks either; the loser gives its block back.

Nodes that come with a podCIDR (``bosun agent --pod-cidr``, hollow nodes) keep it; the
blocks of it inside the cluster CIDR are reserved for that node so they are never handed
out again. Reservations are released when their Node goes. When no block is left, the
node gets condition ``NetworkUnavailable=True`` (reason ``CIDRNotAvailable``, which also
taints it) and a Warning event of that reason, and is tried again when a node goes.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
from collections.abc import Iterator
from typing import Any

from bosun.client.errors import ApiError
from bosun.controllers._common import NODES, Controller, Obj, condition, is_terminating, resource, rfc3339
from bosun.controlplane import ComponentContext
from bosun.network.config import NetworkConfig
from bosun.network.node import load_network_config

log = logging.getLogger(__name__)

LEASES = resource("coordination.k8s.io", "v1", "leases")
NAMESPACE = "kube-system"
PREFIX = "pod-cidr-"
RESERVATION_LABEL = "bosun.io/pod-cidr-reservation"
CIDR_ANNOTATION = "bosun.io/pod-cidr"
REASON = "CIDRNotAvailable"
ASSIGNED = "CIDRAssigned"
RETRY_EXHAUSTED = 30.0  # seconds: blocks may be freed by another server's nodes, too


def reservation_name(block: str) -> str:
    """``10.244.3.0/24`` -> ``pod-cidr-10-244-3-0-24`` (a valid object name)."""
    return PREFIX + block.replace(".", "-").replace("/", "-").replace(":", "-")


def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or [] if c]
    return cidrs or ([str(spec["podCIDR"])] if spec.get("podCIDR") else [])


class Blocks:
    """The cluster CIDR cut into blocks of the node mask size, and which node holds each."""

    def __init__(self, network: NetworkConfig) -> None:
        self.cluster = ipaddress.ip_network(network.cluster_cidr)
        self.mask = network.node_cidr_mask_size
        self.holder: dict[str, str] = {}  # block -> node name
        self.reserved: set[str] = set()  # blocks whose reservation object is known to exist

    def of(self, cidr: str) -> list[str]:
        """The blocks a CIDR covers, or sits in; none for one outside the cluster CIDR."""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return []
        if net.version != self.cluster.version or not net.overlaps(self.cluster):
            return []
        if net.prefixlen >= self.mask:
            return [str(net.supernet(new_prefix=self.mask))]
        inside = net if net.subnet_of(self.cluster) else self.cluster  # type: ignore[arg-type]
        return [str(b) for b in inside.subnets(new_prefix=self.mask)]

    def free(self) -> Iterator[str]:
        """Free blocks, lowest first (a freed block is handed out again)."""
        for block in self.cluster.subnets(new_prefix=self.mask):
            name = str(block)
            if name not in self.holder:
                yield name

    @property
    def total(self) -> int:
        return 1 << (self.mask - self.cluster.prefixlen)


class NodeIpamController(Controller):
    """Keyed by node name."""

    name = "node-ipam"
    workers = 1  # allocation is a few writes per new node; one worker never races itself

    def __init__(self, ctx: ComponentContext, network: NetworkConfig) -> None:
        super().__init__(ctx)
        self.network = network
        self.blocks = Blocks(network)
        self.nodes = ctx.informers.get(NODES)
        self.gone: dict[str, Obj] = {}  # deleted nodes whose blocks are still to release
        self.waiting: set[str] = set()  # nodes that found the cluster CIDR full
        self.nodes.add_handler(self._added, self._updated, self._deleted)

    # -- events --------------------------------------------------------------------------

    def _hold(self, node: Obj) -> None:
        name = str(node["metadata"]["name"])
        for cidr in node_cidrs(node):
            for block in self.blocks.of(cidr):
                self.blocks.holder.setdefault(block, name)

    def _added(self, node: Obj) -> None:
        self._hold(node)
        self.enqueue(node)

    def _updated(self, old: Obj, new: Obj) -> None:
        if node_cidrs(old) != node_cidrs(new) or (not node_cidrs(new) and new["metadata"]["name"] not in self.waiting):
            self._hold(new)
            self.enqueue(new)

    def _deleted(self, node: Obj) -> None:
        self.gone[str(node["metadata"]["name"])] = node
        self.enqueue(node)

    # -- reconcile -----------------------------------------------------------------------

    async def run(self) -> None:
        await self.ctx.informers.start()
        await self._sweep()
        await super().run()

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(None, key)
        gone = self.gone.pop(key, None)
        if gone is not None and (node is None or node["metadata"].get("uid") != gone["metadata"].get("uid")):
            await self._release(gone)
        if node is None:
            self.waiting.discard(key)
            return
        if is_terminating(node):
            return
        cidrs = node_cidrs(node)
        if cidrs:
            self.waiting.discard(key)
            owned = {b for cidr in cidrs for b in self.blocks.of(cidr)}
            for block in sorted(owned):
                if block in self.blocks.reserved and self.blocks.holder.get(block) == key:
                    continue
                if not await self._reserve(block, node):
                    log.warning("node %s has podCIDR %s, whose block %s is held by node %s",
                                key, cidrs[0], block, self.blocks.holder.get(block))
            # Blocks reserved for it by an attempt that lost the race to write the Node: its
            # podCIDR never changes once set, so they are free again (never before: the
            # winner of that race may be about to write one of them).
            for block in [b for b, holder in self.blocks.holder.items() if holder == key and b not in owned]:
                await self._unreserve(block, str(node["metadata"].get("uid") or ""))
            await self._set_unavailable(node, False, ASSIGNED, f"pod CIDR {cidrs[0]} assigned")
            return
        await self._allocate(node)

    async def _allocate(self, node: Obj) -> None:
        name = str(node["metadata"]["name"])
        # Blocks reserved for it already first (an earlier attempt stopped before the Node write).
        mine = [b for b, holder in self.blocks.holder.items() if holder == name]
        block = None
        for candidate in itertools.chain(mine, self.blocks.free()):
            if await self._reserve(candidate, node):
                block = candidate
                break
        if block is None:
            self.waiting.add(name)
            message = (f"no free /{self.blocks.mask} left in cluster CIDR {self.blocks.cluster} "
                       f"(all {self.blocks.total} are held by nodes)")
            await self._set_unavailable(node, True, REASON, message)
            self.recorder.event(node, "Warning", REASON, f"Node {name} status is now: {REASON}: {message}")
            self.queue.add_after(name, RETRY_EXHAUSTED)
            return
        try:
            await self.client.patch(NODES, name, {
                "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                "spec": {"podCIDR": block, "podCIDRs": [block]}})
        except ApiError as e:
            if e.status == 404:  # gone: nobody will write it again
                await self._unreserve(block, str(node["metadata"].get("uid") or ""))
                return
            if e.status != 409:
                raise
            # Changed meanwhile, maybe given a block by another server: look again. The
            # reservation stays until the Node's podCIDR is known (see reconcile).
            self.queue.add_rate_limited(name)
            return
        self.waiting.discard(name)
        log.info("node %s: podCIDR %s", name, block)

    # -- reservations --------------------------------------------------------------------

    async def _reserve(self, block: str, node: Obj) -> bool:
        """Make (or find) the reservation of ``block`` for ``node``; False if another live
        node holds it. A reservation left by a node that no longer exists is taken over."""
        m = node["metadata"]
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": reservation_name(block), "namespace": NAMESPACE,
                             "labels": {RESERVATION_LABEL: "true"}, "annotations": {CIDR_ANNOTATION: block},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": m["name"],
                                                  "uid": m["uid"]}]},
                "spec": {"holderIdentity": m["name"]}}
        for _ in range(2):
            try:
                await self.client.create(LEASES, body, NAMESPACE)
            except ApiError as e:
                if e.status != 409:
                    raise
            else:
                self.blocks.holder[block] = m["name"]
                self.blocks.reserved.add(block)
                return True
            try:
                have = await self.client.get(LEASES, reservation_name(block), NAMESPACE)
            except ApiError as e:
                if e.status == 404:
                    continue  # released meanwhile: create again
                raise
            owner = _owner(have)
            if owner == (m["name"], m["uid"]):
                self.blocks.holder[block] = m["name"]
                self.blocks.reserved.add(block)
                return True
            if owner is not None and await self._alive(*owner):
                self.blocks.holder[block] = owner[0]
                self.blocks.reserved.add(block)
                return False
            await self._delete(have)  # stale: its node is gone
        return False

    async def _alive(self, name: str, uid: str) -> bool:
        node = self.nodes.get(None, name)
        if node is not None and node["metadata"].get("uid") == uid:
            return True
        try:  # the informer may lag behind another server's new node
            node = await self.client.get(NODES, name)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return bool(node["metadata"].get("uid") == uid)

    async def _release(self, node: Obj) -> None:
        name, uid = str(node["metadata"]["name"]), str(node["metadata"].get("uid") or "")
        held = [b for b, holder in self.blocks.holder.items() if holder == name]
        for block in held:
            await self._unreserve(block, uid)
        for waiting in sorted(self.waiting):
            self.queue.add(waiting)

    async def _unreserve(self, block: str, uid: str) -> None:
        self.blocks.holder.pop(block, None)
        self.blocks.reserved.discard(block)
        try:
            have = await self.client.get(LEASES, reservation_name(block), NAMESPACE)
        except ApiError as e:
            if e.status == 404:
                return
            raise
        owner = _owner(have)
        if owner is not None and owner[1] == uid:
            await self._delete(have)
        elif owner is not None:
            self.blocks.holder[block] = owner[0]
            self.blocks.reserved.add(block)

    async def _delete(self, lease: Obj) -> None:
        try:
            await self.client.delete(LEASES, lease["metadata"]["name"], NAMESPACE,
                                     preconditions={"uid": lease["metadata"]["uid"]})
        except ApiError as e:
            if e.status not in (404, 409):
                raise

    async def _sweep(self) -> None:
        """At start: learn the reservations of live nodes, drop those of nodes gone while
        no controller ran."""
        leases, _ = await self.client.list_all(LEASES, NAMESPACE, label_selector=f"{RESERVATION_LABEL}=true")
        for lease in leases:
            block = str((lease["metadata"].get("annotations") or {}).get(CIDR_ANNOTATION) or "")
            owner = _owner(lease)
            if owner is not None and await self._alive(*owner):
                if block:
                    self.blocks.holder.setdefault(block, owner[0])
                    self.blocks.reserved.add(block)
            else:
                await self._delete(lease)

    # -- the node's condition ------------------------------------------------------------

    async def _set_unavailable(self, node: Obj, value: bool, reason: str, message: str) -> None:
        """Condition NetworkUnavailable: set True when the node got no block; set back to
        False only where this controller had set it (other writers own it otherwise)."""
        have = condition(node, "NetworkUnavailable")
        if not value and (have is None or have.get("reason") != REASON):
            return
        status = "True" if value else "False"
        if have is not None and have.get("status") == status and have.get("message") == message:
            return
        stamp = rfc3339()
        since = have["lastTransitionTime"] if have and have.get("status") == status else stamp
        cond: dict[str, Any] = {"type": "NetworkUnavailable", "status": status, "reason": reason,
                                "message": message, "lastHeartbeatTime": stamp, "lastTransitionTime": since}
        try:
            await self.client.patch(NODES, node["metadata"]["name"], {"status": {"conditions": [cond]}},
                                    subresource="status", patch_type="strategic")
        except ApiError as e:
            if e.status != 404:
                raise


def _owner(lease: Obj) -> tuple[str, str] | None:
    for ref in lease["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Node" and ref.get("uid"):
            return str(ref["name"]), str(ref["uid"])
    return None


async def run(ctx: ComponentContext) -> None:
    await NodeIpamController(ctx, await load_network_config(ctx.client)).run()
