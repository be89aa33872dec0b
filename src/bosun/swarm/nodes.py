"""Nodes in Docker's words: status, availability (active/pause/drain), manager status, and
the availability changes: pause cordons the node, drain cordons it and evicts its tasks so
that their services place them elsewhere, active lets the scheduler use it again."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Any

from bosun.api.kinds import must_by_plural
from bosun.client.rest import ApiError, Client
from bosun.membership import MANAGER_LABEL, Manager, leader_identity, list_managers

# How long a drain waits for disruption budgets to let its last tasks go.
DRAIN_BUDGET_WAIT = 60.0

JSON = dict[str, Any]
NODES = must_by_plural("", "v1", "nodes")
PODS = must_by_plural("", "v1", "pods")
AVAILABILITY_ANNOTATION = "bosun.io/availability"
AVAILABILITIES = ("active", "pause", "drain")


@dataclass(frozen=True, slots=True)
class NodeView:
    obj: JSON
    leader: str  # the node (or host) of the manager holding the control plane's lease ("" if unknown)
    lease: Manager | None = None  # the manager Lease of the control plane beside this node, if any
    current: bool | None = None  # the node of the manager the client talks to (None: judge by host name)

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def id(self) -> str:
        return str(self.obj["metadata"].get("uid") or "").replace("-", "")[:25]

    @property
    def hostname(self) -> str:
        labels = self.obj["metadata"].get("labels") or {}
        return str(labels.get("kubernetes.io/hostname") or self.name)

    @property
    def status(self) -> str:
        for c in (self.obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return {"True": "Ready", "False": "Down"}.get(str(c.get("status")), "Unknown")
        return "Unknown"

    @property
    def availability(self) -> str:
        ann = (self.obj["metadata"].get("annotations") or {}).get(AVAILABILITY_ANNOTATION)
        if (self.obj.get("spec") or {}).get("unschedulable"):
            return "Drain" if ann == "drain" else "Pause"
        return "Active"

    @property
    def manager(self) -> bool:
        live = self.lease is not None and self.lease.alive
        return live or MANAGER_LABEL in (self.obj["metadata"].get("labels") or {})

    @property
    def manager_status(self) -> str:
        """Docker's words: Leader, Reachable (its manager renews its Lease), Unreachable."""
        if not self.manager:
            return ""
        leads = bool(self.leader) and self.leader.lower() in (self.name.lower(), self.hostname.lower())
        # No manager Lease (a cluster of one control plane, `bosun up`): the one that holds the
        # controllers' Lease is the manager running; a node merely given the role runs none.
        alive = self.lease.alive if self.lease is not None else self.status == "Ready" and leads
        if alive and leads:
            return "Leader"
        return "Reachable" if alive else "Unreachable"

    @property
    def engine(self) -> str:
        return str(((self.obj.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")

    @property
    def is_self(self) -> bool:
        if self.current is not None:
            return self.current
        return socket.gethostname().lower() in (self.name.lower(), self.hostname.lower())


async def _managers(client: Client) -> list[Manager]:
    try:
        return await list_managers(client)
    except ApiError as e:
        if e.status == 403:
            return []
        raise


async def list_nodes(client: Client) -> list[NodeView]:
    """Every node, with what its manager (if it runs one) says: the leader is the node of the
    manager holding the control plane's Lease, the current node that of the manager at the
    client's server URL."""
    items, _ = await client.list_all(NODES)
    holder = await leader_identity(client)
    managers = {m.node: m for m in await _managers(client) if m.node}
    leader = next((node for node, m in managers.items() if m.identity == holder), holder.rsplit("_", 1)[0])
    here = next((node for node, m in managers.items() if m.url == client.server), None)

    def view(n: JSON) -> NodeView:
        name = str(n["metadata"]["name"])
        lease = managers.get(name)
        if lease is None and managers and MANAGER_LABEL in (n["metadata"].get("labels") or {}):
            lease = Manager("", "", name, alive=False)  # a manager role with no manager running there
        return NodeView(n, leader, lease, None if here is None else name == here)

    return sorted((view(n) for n in items), key=lambda v: v.hostname)


async def find_node(client: Client, ref: str) -> NodeView | None:
    for v in await list_nodes(client):
        if ref in (v.name, v.hostname) or (len(ref) >= 3 and v.id.startswith(ref)):
            return v
    return None


def _owned_by_daemonset(pod: JSON) -> bool:
    return any(r.get("kind") == "DaemonSet" for r in (pod.get("metadata") or {}).get("ownerReferences") or [])


async def pods_on(client: Client, node: str) -> list[JSON]:
    items, _ = await client.list_all(PODS, None, field_selector=f"spec.nodeName={node}")
    return list(items)


async def set_availability(client: Client, node: NodeView, availability: str) -> int:
    """Cordon (pause, drain) or uncordon (active); drain evicts every task that is not one
    of a global service's (those stay, as ``kubectl drain --ignore-daemonsets``). Returns the
    number of tasks evicted."""
    patch = {"spec": {"unschedulable": availability != "active"},
             "metadata": {"annotations": {AVAILABILITY_ANNOTATION: availability if availability != "active" else None}}}
    await client.patch(NODES, node.name, patch)
    if availability != "drain":
        return 0
    pending = [pod for pod in await pods_on(client, node.name)
               if not _owned_by_daemonset(pod) and not pod["metadata"].get("deletionTimestamp")
               and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    return await evict_all(client, pending)


async def evict_all(client: Client, pods: list[JSON], budget_wait: float = DRAIN_BUDGET_WAIT) -> int:
    """Evict each pod; those a PodDisruptionBudget holds back (429) are tried again every
    second, as ``kubectl drain`` does, as their replacements become ready elsewhere. Past
    ``budget_wait`` seconds the last refusal is raised, naming the pod."""
    evicted = 0
    deadline = time.monotonic() + budget_wait
    while pods:
        held: list[JSON] = []
        refusal: ApiError | None = None
        for pod in pods:
            meta = pod["metadata"]
            body = {"apiVersion": "policy/v1", "kind": "Eviction",
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
            try:
                await client.create(PODS, body, meta["namespace"], subresource="eviction")
                evicted += 1
            except ApiError as e:
                if e.status == 429:
                    held.append(pod)
                    refusal = e
                elif not e.not_found:
                    raise
        if refusal is not None and time.monotonic() > deadline:
            name = held[0]["metadata"]["name"]
            raise ApiError(429, refusal.reason, f"task {name}: {refusal.message}", refusal.body)
        pods = held
        if pods:
            await asyncio.sleep(1.0)
    return evicted


async def update_labels(client: Client, node: NodeView, add: dict[str, str], remove: list[str]) -> None:
    labels: dict[str, str | None] = {k: None for k in remove}
    labels.update(add)
    await client.patch(NODES, node.name, {"metadata": {"labels": labels}})


async def set_manager(client: Client, node: NodeView, manager: bool) -> None:
    """The manager role as placement sees it (``node.role==manager``): the control-plane label."""
    await client.patch(NODES, node.name, {"metadata": {"labels": {MANAGER_LABEL: "" if manager else None}}})


def can_remove_manager(managers: list[NodeView], leaving: NodeView) -> bool:
    """Docker's quorum safeguard (swarmkit's CanRemoveMember): the managers left must count
    a quorum of themselves that are reachable. Every manager of a swarm on its managers' own
    etcd members runs one member, so this is the etcd cluster's quorum too (etcd would
    refuse the member's removal otherwise, and the member would be left stopped but counted)."""
    rest = [m for m in managers if m.name != leaving.name]
    reachable = sum(1 for m in rest if m.manager_status in ("Leader", "Reachable"))
    return reachable >= len(rest) // 2 + 1
