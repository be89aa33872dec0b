"""Node heartbeats through Leases, paced so thousands of nodes do not flood the API.

A kubelet renews its Lease every period. Thousands of hollow nodes in one process doing the
same on one timer would hit the API server with bursts of thousands of writes; instead the
renewals are spread evenly over the period and at most ``concurrency`` are in flight. When the
API is slower than the renewal rate, a node is never queued twice, so the backlog stays bounded
(N nodes) and renewals simply arrive late, which is what the node lifecycle controller is
there to notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.registry import Resource, by_plural
from bosun.client.rest import TRANSPORT_ERRORS, ApiError, Client
from bosun.hollow.http import LeanHttp
from bosun.hollow.nodes import NODE_LEASE_NAMESPACE, build_lease, micro_time

log = logging.getLogger(__name__)

_leases = by_plural("coordination.k8s.io", "v1", "leases")
assert _leases is not None
LEASES: Resource = _leases
_FAILURES: tuple[type[BaseException], ...] = (ApiError, *TRANSPORT_ERRORS)
_LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases/"


class LeaseHeartbeat:
    """Renews one Lease per node every ``period`` seconds until stopped."""

    def __init__(
        self,
        client: Client,
        nodes: list[str],
        *,
        period: float,
        concurrency: int = 8,
        node_uid: Callable[[str], str | None] = lambda name: None,
        node_exists: Callable[[str], bool] = lambda name: True,
        http: LeanHttp | None = None,
    ) -> None:
        if period <= 0:
            raise ValueError("heartbeat period must be positive")
        self.client = client
        # Renewals go over lean connections; None: made (and closed) by this heartbeat.
        self._own_http = http is None
        self.http = http or LeanHttp(client.config, connections=concurrency)
        self.nodes = list(nodes)
        self.period = period
        self.concurrency = max(1, concurrency)
        self.duration = max(1, math.ceil(period * 4))  # a kubelet renews at 1/4 of its duration
        self._node_uid = node_uid
        self._node_exists = node_exists
        self._created: set[str] = set()
        self._queued: set[str] = set()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self.renewals = 0
        self.failures = 0

    async def start(self) -> None:
        if self._tasks or not self.nodes:
            return
        self._tasks.append(asyncio.create_task(self._pace(), name="hollow-heartbeat-pacer"))
        for i in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"hollow-heartbeat-{i}"))

    async def stop(self) -> None:
        for t in self._tasks:
            await cancel_and_wait(t)
        self._tasks.clear()
        self._queued.clear()
        self._queue = asyncio.Queue()
        if self._own_http:
            await self.http.close()

    async def _pace(self) -> None:
        """Hand out node i at offset i/N of every period, never one already waiting."""
        loop = asyncio.get_running_loop()
        step = self.period / len(self.nodes)
        due = loop.time()
        i = 0
        while True:
            now = loop.time()
            while due <= now:
                name = self.nodes[i]
                if name not in self._queued:
                    self._queued.add(name)
                    self._queue.put_nowait(name)
                i = (i + 1) % len(self.nodes)
                due += step
            # Batches of a few renewals per wake-up are fine; thousands of timers a second are not.
            await asyncio.sleep(max(due - loop.time(), 0.01))

    async def _worker(self) -> None:
        while True:
            name = await self._queue.get()
            try:
                await self.renew(name)
                self.renewals += 1
            except asyncio.CancelledError:
                raise
            except _FAILURES as e:
                self.failures += 1
                log.warning("lease renewal for %s failed: %s", name, e)
            finally:
                self._queued.discard(name)

    async def renew(self, name: str) -> None:
        """One heartbeat: create the Lease the first time, then move its renewTime."""
        if name not in self._created:
            if not self._node_exists(name):
                return
            lease = build_lease(name, self._node_uid(name), self.duration)
            try:
                await self.http.post(_LEASE_PATH.rstrip("/"), lease)
                self._created.add(name)
                return
            except ApiError as e:
                if e.status != 409:
                    raise
            self._created.add(name)
        patch = {"spec": {"holderIdentity": name, "leaseDurationSeconds": self.duration,
                          "renewTime": micro_time()}}
        try:
            await self.http.patch(_LEASE_PATH + name, patch)
        except ApiError as e:
            if e.status != 404:
                raise
            # Gone (deleted with its Node, or by hand): recreate it on the next beat, if the
            # Node is still there; a deleted Node's kubelet does not resurrect it.
            self._created.discard(name)
            if self._node_exists(name):
                with contextlib.suppress(ApiError):
                    await self.renew(name)
