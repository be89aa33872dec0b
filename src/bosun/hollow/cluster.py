"""A whole hollow cluster in one process: N registered nodes, their heartbeats, their pods.

This is the piece tests and benchmarks hold: ``await HollowCluster(client, nodes=100).start()``
returns once every Node exists and the pod informer has synced, so a caller can create pods
right away; ``stop()`` ends heartbeats and pod handling exactly as a killed process would,
leaving the Nodes behind to go NotReady.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.registry import Resource, by_plural
from bosun.client.informer import Informer
from bosun.client.rest import ApiError, Client
from bosun.client.workqueue import WorkQueue, run_workers
from bosun.hollow.heartbeat import LEASES, LeaseHeartbeat
from bosun.hollow.http import LeanHttp
from bosun.hollow.kubelet import PodRunner
from bosun.hollow.nodes import (
    MAX_NODES,
    NODE_LEASE_NAMESPACE,
    NodeShape,
    build_node,
    is_ready,
    node_name,
    ready_conditions,
    rfc3339,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]

_nodes = by_plural("", "v1", "nodes")
assert _nodes is not None
NODES: Resource = _nodes


async def _bounded(items: Iterable[Any], fn: Callable[[Any], Awaitable[None]], concurrency: int) -> None:
    """Run ``fn`` over ``items`` with at most ``concurrency`` calls in flight."""
    it = iter(items)

    async def worker() -> None:
        for item in it:
            await fn(item)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))


class HollowCluster:
    """N simulated nodes (Kubemark/KWOK-style) attached to one API server."""

    def __init__(
        self,
        client: Client,
        nodes: int,
        *,
        cpu: str = "4",
        memory: str = "16Gi",
        pods: int = 110,
        ephemeral_storage: str = "100Gi",
        zones: int = 3,
        labels: dict[str, str] | None = None,
        taints: list[Obj] | None = None,
        name_prefix: str = "hollow",
        pod_runtime: float = 1.0,
        heartbeat: float = 2.0,
        register_concurrency: int = 32,
        # Thousands of kubelets write their pods' status independently; with few writes in
        # flight a busy API server served the creates first and hollow pods turned Running
        # seconds after binding (bench/scheduler.py "run lag"), understating the server's load.
        status_concurrency: int = 128,
        # Real kubelets each have their own connection; with only 8 renewals in flight, 1,000
        # nodes behind a busy API server (10,000 pods starting) fell to 40 renewals/s of the
        # 200/s needed and half the cluster went NotReady (bench/controllers.py).
        heartbeat_concurrency: int = 64,
    ) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError(f"nodes: must be between 1 and {MAX_NODES}")
        if pod_runtime < 0:
            raise ValueError("pod_runtime: must not be negative")
        self.client = client
        self.shape = NodeShape(cpu=cpu, memory=memory, pods=pods, ephemeral_storage=ephemeral_storage,
                               zones=zones, labels=dict(labels or {}), taints=list(taints or []))
        self.names = [node_name(name_prefix, i) for i in range(nodes)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.register_concurrency = register_concurrency
        self._uids: dict[str, str] = {}
        self.node_informer = Informer(client, NODES)
        self.node_informer.add_handler(self._on_node, lambda old, new: self._on_node(new))
        self._repairs = WorkQueue()
        self._repair_task: asyncio.Task[None] | None = None
        # Heartbeats and pod status writes share lean keep-alive connections (see http.py).
        self.http = LeanHttp(client.config, connections=heartbeat_concurrency + status_concurrency)
        self.heartbeat = LeaseHeartbeat(
            client, self.names, period=heartbeat, concurrency=heartbeat_concurrency,
            node_uid=self._uids.get, node_exists=self._node_exists, http=self.http,
        )
        self.pods = PodRunner(client, self.index, pod_runtime=pod_runtime, workers=status_concurrency,
                              http=self.http)
        self._running = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register every node, then start heartbeats and pod handling."""
        try:
            await _bounded(range(len(self.names)), self._register, self.register_concurrency)
            await self.node_informer.start()
            await self.node_informer.wait_synced(120)
            self._repair_task = asyncio.create_task(run_workers(self._repairs, self._repair, 4),
                                                    name="hollow-node-status")
            await self.heartbeat.start()
            await self.pods.start()
            self._running = True
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop as a killed process would: no more heartbeats or pod updates; Nodes stay."""
        self._running = False
        await self.heartbeat.stop()
        await self.pods.stop()
        self._repairs.shutdown()
        await cancel_and_wait(self._repair_task)
        self._repair_task = None
        self._repairs = WorkQueue()
        await self.node_informer.stop()
        await self.http.close()

    async def __aenter__(self) -> HollowCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def delete_nodes(self) -> None:
        """Remove this cluster's Nodes and Leases (cleanup for tests and benchmarks)."""

        async def one(name: str) -> None:
            for res, ns in ((NODES, None), (LEASES, NODE_LEASE_NAMESPACE)):
                try:
                    await self.client.delete(res, name, ns)
                except ApiError as e:
                    if e.status != 404:
                        raise

        await _bounded(self.names, one, self.register_concurrency)

    # -- registration ---------------------------------------------------------------------------

    async def _register(self, index: int) -> None:
        """Create the Node, or (a restarted hollow process) take the existing one back."""
        name = self.names[index]
        node = build_node(name, index, self.shape)
        try:
            created = await self.client.create(NODES, node)
        except ApiError as e:
            if e.status != 409:
                raise
            await self.client.patch(NODES, name, {"metadata": {"labels": node["metadata"]["labels"]}})
            created = await self.client.patch(NODES, name, {"status": node["status"]}, subresource="status")
        self._uids[name] = str((created.get("metadata") or {}).get("uid") or "")

    def _node_exists(self, name: str) -> bool:
        return self.node_informer.get(None, name) is not None

    # -- keeping the Ready condition true while alive -------------------------------------------

    def _on_node(self, node: Obj) -> None:
        name = str((node.get("metadata") or {}).get("name"))
        if name in self.index:
            uid = (node.get("metadata") or {}).get("uid")
            if uid:
                self._uids[name] = str(uid)
            if not is_ready(node):
                self._repairs.add(name)

    async def _repair(self, name: str) -> None:
        """A live kubelet reports Ready again when something marked its node otherwise (the
        lifecycle controller, after heartbeats were late)."""
        node = self.node_informer.get(None, name)
        if node is None or is_ready(node):
            return
        try:
            await self.client.patch(NODES, name, {"status": {"conditions": ready_conditions(rfc3339())}},
                                    subresource="status")
        except ApiError as e:
            if e.status != 404:
                raise

    # -- observing ------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return {
            "nodes": len(self.names),
            "lease_renewals": self.heartbeat.renewals,
            "lease_failures": self.heartbeat.failures,
            "pods_started": self.pods.started,
            "pods_completed": self.pods.completed,
            "pods_deleted": self.pods.deleted,
        }
