"""Binding: POST pods/NAME/binding, many in flight at once.

The scheduling decision is already in the snapshot (the pod is assumed), so the loop does
not wait for the API; the binder reports back whether the write took. A refused binding
(the pod was deleted or bound elsewhere, the node vanished, the API was away) un-assumes the
pod so its capacity is free again, and the scheduler requeues it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from bosun.api.registry import Resource
from bosun.client.errors import ApiError
from bosun.client.rest import Client

log = logging.getLogger(__name__)
Obj = dict[str, Any]
# (pod, node, error or None); error is None on success.
Outcome = Callable[[Obj, str, Exception | None], None]


class Binder:
    def __init__(self, client: Client, pods: Resource, on_done: Outcome, node_exists: Callable[[str], bool],
                 max_in_flight: int = 64) -> None:
        self.client = client
        self.node_exists = node_exists
        self.pods = pods
        self.on_done = on_done
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, pod: Obj, node: str) -> None:
        task = asyncio.get_running_loop().create_task(self._bind(pod, node))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        error: Exception | None = None
        async with self._slots:
            try:
                if not self.node_exists(node):
                    # The API would accept it (as Kubernetes' does); a pod bound to a node that is
                    # gone would never run, so schedule it again instead.
                    raise ApiError(404, "NotFound", f'node "{node}" was deleted before the pod was bound to it')
                await self.client.create(self.pods, body, meta["namespace"], subresource="binding")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one pod's binding take the loop down
                if not isinstance(exc, ApiError | aiohttp.ClientError | OSError | asyncio.TimeoutError):
                    log.exception("binding %s/%s to %s failed", meta["namespace"], meta["name"], node)
                error = exc
        self.on_done(pod, node, error)

    async def drain(self) -> None:
        """Wait for every binding in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
