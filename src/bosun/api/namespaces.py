"""Namespace deletion: empty a Terminating namespace, then let it go.

Kubernetes does this in the controller manager; it lives next to the API here because a
namespace cannot be deleted without it and the API server must work on its own. In a
control plane it runs only in the server that holds the `bosun-controlplane` Lease.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.errors import APIError
from bosun.api.nstracker import NamespaceTracker
from bosun.api.registry import STORED, by_plural
from bosun.api.storage import Storage
from bosun.api.watchcache import CachedEvent

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class NamespaceFinalizer:
    def __init__(self, storage: Storage, tracker: NamespaceTracker) -> None:
        self.storage = storage
        self.tracker = tracker
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        # Namespaces this finalizer finished: shows which of several servers does the work.
        self.actions = 0

    def start(self) -> None:
        for name, phase in self.tracker.phase.items():
            if phase == "Terminating":
                self._enqueue(name)
        self._task = asyncio.create_task(self._run(), name="namespace-finalizer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def observe(self, ev: CachedEvent) -> None:
        if ev.group_plural != "namespaces" or ev.type == "DELETED":
            return
        if ev.obj.get("metadata", {}).get("deletionTimestamp"):
            self._enqueue(ev.obj["metadata"]["name"])

    def _enqueue(self, name: str) -> None:
        if name not in self.pending:
            self.pending.add(name)
            self.queue.put_nowait(name)

    async def _run(self) -> None:
        while True:
            name = await self.queue.get()
            self.pending.discard(name)
            try:
                done = await self._finalize(name)
            except Exception as exc:  # the store may be away: try again later
                log.warning("finalizing namespace %s failed: %s", name, exc)
                done = False
            if not done:
                asyncio.get_running_loop().call_later(RETRY_SECONDS, self._enqueue, name)

    async def _finalize(self, name: str) -> bool:
        ns_res = by_plural("", "v1", "namespaces")
        assert ns_res is not None
        try:
            ns = await self.storage.get(ns_res, None, name)
        except APIError as exc:
            if exc.code == 404:
                return True
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return True
        remaining = 0
        for res in STORED:
            if not res.namespaced:
                continue
            items, _, _ = await self.storage.list(res, name)
            for obj in items:
                if obj["metadata"].get("deletionTimestamp"):
                    remaining += 1
                    continue
                try:
                    _, gone = await self.storage.delete(res, name, obj["metadata"]["name"],
                                                        options={"propagationPolicy": "Background"})
                except APIError as exc:
                    gone = exc.code == 404
                if not gone:
                    remaining += 1
        if remaining:
            return False

        def drop_finalizer(obj: dict[str, Any]) -> dict[str, Any]:
            spec = obj.setdefault("spec", {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
            if not spec["finalizers"]:
                del spec["finalizers"]
            return obj

        try:
            await self.storage.mutate(ns_res, None, name, drop_finalizer, subresource="finalize")
            self.actions += 1
        except APIError as exc:
            if exc.code != 404:
                raise
        return True
