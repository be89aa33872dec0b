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
from bosun.client.rest import Client, resource_path

log = logging.getLogger(__name__)
Obj = dict[str, Any]
# (pod, node, error or None); error is None on success.
Outcome = Callable[[Obj, str, Exception | None], None]


class Binder:
    """Posts bindings from ``max_in_flight`` long-lived workers fed by a queue (a task per pod
    cost more than the binding's own bookkeeping)."""

    def __init__(self, client: Client, pods: Resource, on_done: Outcome, node_exists: Callable[[str], bool],
                 max_in_flight: int = 64) -> None:
        self.client = client
        self.node_exists = node_exists
        self.pods = pods
        self.on_done = on_done
        self.max_in_flight = max(1, max_in_flight)
        self._queue: asyncio.Queue[tuple[Obj, str]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0

    @property
    def in_flight(self) -> int:
        """Bindings submitted and not yet answered."""
        return self._queue.qsize() + self._busy

    def submit(self, pod: Obj, node: str) -> None:
        if len(self._workers) < self.max_in_flight:
            loop = asyncio.get_running_loop()
            self._workers = [t for t in self._workers if not t.done()]
            while len(self._workers) < self.max_in_flight:
                self._workers.append(loop.create_task(self._work(), name="binder"))
        self._queue.put_nowait((pod, node))

    async def _work(self) -> None:
        while True:
            pod, node = await self._queue.get()
            self._busy += 1
            try:
                await self._bind(pod, node)
            finally:
                self._busy -= 1
                self._queue.task_done()

    async def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        error: Exception | None = None
        try:
            if not self.node_exists(node):
                # The API would accept it (as Kubernetes' does); a pod bound to a node that is
                # gone would never run, so schedule it again instead.
                raise ApiError(404, "NotFound", f'node "{node}" was deleted before the pod was bound to it')
            # The answer (a Status) is not needed: skip decoding it.
            await self.client.request_raw(
                "POST", resource_path(self.pods, meta["namespace"], meta["name"], "binding"), body=body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let one pod's binding take the loop down
            if not isinstance(exc, ApiError | aiohttp.ClientError | OSError | asyncio.TimeoutError):
                log.exception("binding %s/%s to %s failed", meta["namespace"], meta["name"], node)
            error = exc
        try:
            self.on_done(pod, node, error)
        except Exception:
            log.exception("after binding %s/%s", meta["namespace"], meta["name"])

    async def drain(self) -> None:
        """Wait for every binding in flight (tests, shutdown)."""
        await self._queue.join()

    async def close(self) -> None:
        for t in self._workers:
            t.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        self._queue = asyncio.Queue()  # what was never sent is the next leader's to schedule
        self._busy = 0
