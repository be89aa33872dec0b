"""Fills the history: every ``resolution`` seconds, each node's Summary API document (usage,
disk, network and its pods' scraped custom metrics, through the metrics API's per-node cache)
and every pod's restart counts (kept current from the watch cache's events, not re-listed).

Every API server keeps its own history: it is what its own custom metrics API, query API and
/federate answer from, and a server that takes over the lead has one already. With API workers
(``--api-workers``) only the store owner process does: the workers forward those requests to
it (:mod:`bosun.monitoring.serving`), so the nodes are read once and every answer is the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from bosun.api.cachedlist import ListOptions, list_page, objects
from bosun.api.metrics import CACHE_SECONDS
from bosun.api.registry import must_by_plural
from bosun.monitoring.history import MetricsHistory
from bosun.monitoring.ingest import node_samples, pod_samples, restart_samples
from bosun.monitoring.rounds import Rounds

if TYPE_CHECKING:
    from bosun.api.metrics import MetricsAPI
    from bosun.api.storage import Storage
    from bosun.api.watchcache import CachedEvent, WatchCache

log = logging.getLogger(__name__)
NODES, PODS = must_by_plural("", "v1", "nodes"), must_by_plural("", "v1", "pods")
# A node's document read longer ago than this (by an HPA, kubectl top) predates the scrapes its
# agent made for this round, a second before the grid (bosun.agent.scrape): it is read again.
# Only when rounds are further apart than the metrics API's cache: a finer history (the tests'
# 1 s) reads through the cache as before rather than have every agent sample every second.
FRESH = 0.5


class Collector:
    def __init__(self, storage: Storage, cache: WatchCache, metrics_api: MetricsAPI, history: MetricsHistory) -> None:
        self.storage = storage
        self.cache = cache
        self.metrics_api = metrics_api
        self.history = history
        # Who follows the rounds (the alert rules' evaluation) hears of each as it lands.
        self.rounds = Rounds(history.config.resolution)
        # Held while a round writes into the rings: a snapshot copies them between rounds.
        self.writing = asyncio.Lock()
        self._restarts: dict[str, list[tuple[str, dict[str, str], float]]] = {}  # pod key -> samples
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.last_duration = 0.0

    def _observe(self, ev: CachedEvent) -> None:
        if ev.group_plural != "pods":
            return
        if ev.type == "DELETED":
            self._restarts.pop(ev.key, None)
            return
        if ev.lacks(b'"containerStatuses"'):
            return  # no container has started yet: nothing to count, and no decode to find that out
        samples = list(restart_samples(ev.obj))
        if samples:
            self._restarts[ev.key] = samples

    async def start(self) -> None:
        self.cache.listeners.append(self._observe)
        pods, _, _ = await self.storage.list(PODS, None)
        for p in pods:
            samples = list(restart_samples(p))
            if samples:
                self._restarts[PODS.key(p["metadata"].get("namespace"), p["metadata"]["name"])] = samples
        self._task = asyncio.create_task(self._run(), name="metrics-history")

    async def stop(self) -> None:
        if self._observe in self.cache.listeners:
            self.cache.listeners.remove(self._observe)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        resolution = self.history.config.resolution
        while True:
            began = time.monotonic()
            try:
                await self.collect()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("collecting metrics failed")
            self.last_duration = time.monotonic() - began
            # Line up with the slot grid, so that one collection lands in each slot.
            await asyncio.sleep(resolution - (time.time() % resolution) + 0.05)

    async def collect(self, now: float | None = None) -> int:
        """One round; returns how many samples were recorded."""
        t = time.time() if now is None else now
        # From the watch cache (resourceVersion 0: any recent state will do), whose nodes are
        # decoded already: read from the store, a 5,000-node round decoded every Node again.
        nodes = objects(NODES, await list_page(self.cache, self.storage, NODES, None, ListOptions("0")))
        fresh = FRESH if self.history.config.resolution > CACHE_SECONDS else None
        summaries = await asyncio.gather(*(self.metrics_api.summary(n, max_age=fresh) for n in nodes))
        async with self.writing:
            added = await self._record(nodes, summaries, t)
        self.rounds.landed(t)
        return added

    async def _record(self, nodes: list[dict[str, Any]], summaries: list[dict[str, Any] | None], t: float) -> int:
        added = 0
        for node, summary in zip(nodes, summaries, strict=True):
            if summary:
                added += self.ingest(node["metadata"]["name"], summary, t)
                # A round of a big cluster is a few hundred ms of work: let requests through
                # between nodes rather than stall the server's loop for all of it.
                await asyncio.sleep(0)
        restarts = list(self._restarts.values())
        for i in range(0, len(restarts), 500):
            added += sum(self.history.add_many(samples, t) for samples in restarts[i:i + 500])
            await asyncio.sleep(0)
        self.ticks += 1
        if self.ticks % 30 == 0:
            self.history.expire(t)
        return added

    def ingest(self, node: str, summary: dict[str, Any], t: float) -> int:
        return (self.history.add_many(node_samples(node, summary), t)
                + self.history.add_many(pod_samples(node, summary), t))
