"""One informer per resource, shared by every component in a process.

The scheduler and a dozen controllers all watch pods; with shared informers the process
holds one cache and one watch per resource instead of one per consumer.
"""

from __future__ import annotations

import asyncio

from bosun.api.kinds import Kind
from bosun.client.informer import Informer
from bosun.client.rest import Client


class SharedInformers:
    def __init__(self, client: Client, *, shared_objects: bool = False) -> None:
        self.client = client
        self.shared_objects = shared_objects
        self._informers: dict[str, Informer] = {}
        self._started: set[str] = set()

    def get(self, resource: Kind) -> Informer:
        """The cluster-wide informer of ``resource`` (created on first use, not yet started)."""
        key = resource.group_plural
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, resource, shared_objects=self.shared_objects)
            self._informers[key] = inf
        return inf

    async def start(self, sync_seconds: float = 60.0) -> None:
        """Start every informer asked for so far and wait until all of them have listed
        (also those another component started: its cache may still be filling)."""
        for key in list(self._informers):
            if key not in self._started:
                self._started.add(key)
                await self._informers[key].start()
        await asyncio.gather(*(inf.wait_synced(sync_seconds) for inf in self._informers.values()))

    async def stop(self) -> None:
        for inf in self._informers.values():
            await inf.stop()
        self._started.clear()
