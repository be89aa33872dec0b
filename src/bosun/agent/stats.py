"""Resource usage of the node and its containers: sampled, turned into rates, and served as
kubelet's Summary API (``GET /stats/summary``, what metrics-server and Bosun's metrics API
read) and as Prometheus text (``GET /metrics`` and ``/metrics/resource``, kubelet's names).

CPU is a counter, so a rate needs two readings. A background loop samples every
``interval`` seconds (kubelet's housekeeping does the same) so that a request finds a recent
reading to compare against; a request refreshes the newest reading when it is more than a
second old, and only the very first request waits (``min_window``) for a second reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from bosun.agent import usage
from bosun.agent.podnet import add_pod_network
from bosun.agent.runtime.base import (
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    ContainerState,
    RuntimeDriver,
)
from bosun.agent.scrape import PodScraper
from bosun.agent.volumestats import VolumeStats
from bosun.aio import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContainerSample:
    id: str
    pod_uid: str
    pod_name: str
    namespace: str
    name: str
    started_at: float
    cpu_ns: int
    working_set_bytes: int


@dataclass
class Sample:
    time: float
    node: usage.Usage
    containers: dict[str, ContainerSample] = field(default_factory=dict)


@dataclass(frozen=True)
class Rates:
    """Two samples and what lies between them."""

    cur: Sample
    prev: Sample

    def node_nanocores(self) -> int:
        dt = self.cur.time - self.prev.time
        return max(int((self.cur.node.cpu_ns - self.prev.node.cpu_ns) / dt), 0) if dt > 0 else 0

    def container_nanocores(self, c: ContainerSample) -> tuple[int, float]:
        """(nanocores, window seconds); a container newer than the previous sample is measured
        over its whole life, which is exactly its average since start."""
        old = self.prev.containers.get(c.id)
        if old is not None and self.cur.time > self.prev.time:
            dt = self.cur.time - self.prev.time
            return max(int((c.cpu_ns - old.cpu_ns) / dt), 0), dt
        life = self.cur.time - c.started_at if c.started_at else 0.0
        return (int(c.cpu_ns / life), life) if life > 0 else (0, 0.0)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatsCollector:
    def __init__(self, driver: RuntimeDriver, node_name: str, *, interval: float = 10.0,
                 min_window: float = 1.0, scraper: PodScraper | None = None, fs_path: Path | None = None,
                 volumes: VolumeStats | None = None) -> None:
        self.driver = driver
        self.scraper = scraper
        self.volumes = volumes
        self.fs_path = fs_path
        self._disk: dict[str, int] = {}
        self._disk_at = 0.0
        self.node_name = node_name
        self.interval = interval
        self.min_window = min_window
        self._samples: list[Sample] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> Sample:
        now = time.time()
        node = await asyncio.to_thread(usage.node_usage)
        out = Sample(time=now, node=node)
        for st in await self.driver.list_containers():
            if st.state != ContainerState.RUNNING:
                continue
            try:
                s = await self.driver.stats(st.id)
            except Exception:
                log.debug("stats of container %s failed", st.id, exc_info=True)
                continue
            if s is None:
                continue
            out.containers[st.id] = ContainerSample(
                id=st.id, pod_uid=st.pod_uid, pod_name=st.labels.get(LABEL_POD_NAME, ""),
                namespace=st.labels.get(LABEL_POD_NAMESPACE, ""), name=st.name,
                started_at=st.started_at or 0.0, cpu_ns=s.cpu_usage_ns,
                working_set_bytes=s.memory_working_set_bytes)
        self._samples.append(out)
        # Keep what a rate may need: the newest few, nothing older than three intervals.
        horizon = now - max(3 * self.interval, 3 * self.min_window)
        self._samples = [x for x in self._samples[-8:] if x.time >= horizon] or [out]
        return out

    def _previous(self, cur: Sample) -> Sample | None:
        for s in reversed(self._samples):
            if s.time <= cur.time - self.min_window:
                return s
        return None

    async def rates(self) -> Rates:
        """A fresh sample and the newest one at least ``min_window`` older."""
        async with self._lock:
            cur = self._samples[-1] if self._samples else None
            if cur is None or time.time() - cur.time > 1.0:
                cur = await self.sample()
            prev = self._previous(cur)
            if prev is None:
                oldest = self._samples[0]
                await asyncio.sleep(max(oldest.time + self.min_window - time.time(), 0.0))
                prev, cur = oldest, await self.sample()
            return Rates(cur, prev)

    async def run(self) -> None:
        while True:
            try:
                async with self._lock:
                    await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sampling resource usage failed")
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="agent-stats")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    # -- Summary API ------------------------------------------------------------------------

    async def summary(self) -> dict[str, Any]:
        r = await self.rates()
        cur = r.cur
        ts = rfc3339(cur.time)
        total, _, _ = usage.node_memory()
        node = {
            "nodeName": self.node_name,
            "startTime": rfc3339(usage.boot_time()),
            "cpu": {"time": ts, "usageNanoCores": r.node_nanocores(), "usageCoreNanoSeconds": cur.node.cpu_ns},
            "memory": {"time": ts, "availableBytes": max(total - cur.node.working_set_bytes, 0),
                       "usageBytes": cur.node.usage_bytes, "workingSetBytes": cur.node.working_set_bytes},
        }
        pods: dict[str, dict[str, Any]] = {}
        for c in sorted(cur.containers.values(), key=lambda c: (c.namespace, c.pod_name, c.name)):
            nanocores, window = r.container_nanocores(c)
            pod = pods.setdefault(c.pod_uid, {
                "podRef": {"name": c.pod_name, "namespace": c.namespace, "uid": c.pod_uid},
                "startTime": rfc3339(c.started_at), "containers": [],
                "cpu": {"time": ts, "usageNanoCores": 0, "usageCoreNanoSeconds": 0},
                "memory": {"time": ts, "workingSetBytes": 0},
            })
            if c.started_at and rfc3339(c.started_at) < pod["startTime"]:
                pod["startTime"] = rfc3339(c.started_at)
            pod["containers"].append({
                "name": c.name, "startTime": rfc3339(c.started_at),
                "cpu": {"time": ts, "usageNanoCores": nanocores, "usageCoreNanoSeconds": c.cpu_ns},
                "memory": {"time": ts, "workingSetBytes": c.working_set_bytes},
                # Not part of kubelet's shape: how long the CPU rate was measured over.
                "windowSeconds": round(window, 3),
            })
            pod["cpu"]["usageNanoCores"] += nanocores
            pod["cpu"]["usageCoreNanoSeconds"] += c.cpu_ns
            pod["memory"]["workingSetBytes"] += c.working_set_bytes
        self._node_extras(node, ts)
        if self.fs_path is not None:
            used = await self._pod_disk(list(pods))
            for uid, pod in pods.items():
                pod["ephemeral-storage"] = {"time": ts, "usedBytes": used.get(uid, 0)}
        await add_pod_network(self.driver, pods, ts)
        if self.volumes is not None:
            for pod in pods.values():
                ref = pod["podRef"]
                claims = await self.volumes.for_pod(ref["namespace"], ref["name"], ts)
                if claims:
                    pod["volume"] = claims
        if self.scraper is not None:
            checks = self.scraper.checks.for_node()
            if checks:
                # Not part of kubelet's shape: the Services' HTTP checks that are no pod's.
                node["customMetrics"] = checks
            for uid, pod in pods.items():
                custom = self.scraper.for_pod(uid)
                if custom:
                    # Not part of kubelet's shape: the pod's scraped Prometheus samples.
                    pod["customMetrics"] = custom
        return {"node": node, "pods": list(pods.values()),
                "windowSeconds": round(cur.time - r.prev.time, 3)}

    async def _pod_disk(self, uids: list[str]) -> dict[str, int]:
        """Bytes each pod's directory (logs, volumes kept on the node's disk) takes, measured
        at most once per sampling interval (walking directories is not free)."""
        if time.time() - self._disk_at < self.interval and set(uids) <= set(self._disk):
            return self._disk
        assert self.fs_path is not None
        base = self.fs_path
        self._disk = await asyncio.to_thread(lambda: {u: usage.dir_bytes(base / u) for u in uids})
        self._disk_at = time.time()
        return self._disk

    def _node_extras(self, node: dict[str, Any], ts: str) -> None:
        """Disk and network of the node, as kubelet's summary has them."""
        try:
            rx, tx = usage.node_network()
            node["network"] = {"time": ts, "rxBytes": rx, "txBytes": tx}
            if self.fs_path is not None:
                capacity, used, available = usage.node_fs(self.fs_path)
                node["fs"] = {"time": ts, "capacityBytes": capacity, "usedBytes": used, "availableBytes": available}
        except OSError:
            log.debug("reading the node's disk or network usage failed", exc_info=True)

    # -- Prometheus ---------------------------------------------------------------------------

    def prometheus(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_ResourceCollector(self))
        return registry


class _ResourceCollector(Collector):
    """kubelet's ``/metrics/resource`` series from the newest sample (the handler refreshes it
    before a scrape)."""

    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        if not self.stats._samples:
            return
        s = self.stats._samples[-1]
        node_cpu = CounterMetricFamily("node_cpu_usage_seconds", "Cumulative CPU time used by the node.")
        node_cpu.add_metric([], s.node.cpu_ns / 1e9)
        node_mem = GaugeMetricFamily("node_memory_working_set_bytes", "Memory working set of the node.")
        node_mem.add_metric([], s.node.working_set_bytes)
        labels = ["container", "pod", "namespace"]
        c_cpu = CounterMetricFamily("container_cpu_usage_seconds", "Cumulative CPU time of a container.",
                                    labels=labels)
        c_mem = GaugeMetricFamily("container_memory_working_set_bytes", "Memory working set of a container.",
                                  labels=labels)
        c_start = GaugeMetricFamily("container_start_time_seconds", "When the container started.",
                                    labels=labels)
        p_cpu = CounterMetricFamily("pod_cpu_usage_seconds", "Cumulative CPU time of a pod.",
                                    labels=["pod", "namespace"])
        p_mem = GaugeMetricFamily("pod_memory_working_set_bytes", "Memory working set of a pod.",
                                  labels=["pod", "namespace"])
        pods: dict[tuple[str, str], list[float]] = {}
        for c in s.containers.values():
            lv = [c.name, c.pod_name, c.namespace]
            c_cpu.add_metric(lv, c.cpu_ns / 1e9)
            c_mem.add_metric(lv, c.working_set_bytes)
            c_start.add_metric(lv, c.started_at)
            acc = pods.setdefault((c.pod_name, c.namespace), [0.0, 0.0])
            acc[0] += c.cpu_ns / 1e9
            acc[1] += c.working_set_bytes
        for (pod, ns), (cpu, mem) in pods.items():
            p_cpu.add_metric([pod, ns], cpu)
            p_mem.add_metric([pod, ns], mem)
        scrape = GaugeMetricFamily("scrape_error", "1 if there was an error while getting container metrics.")
        scrape.add_metric([], 0)
        yield from (node_cpu, node_mem, c_cpu, c_mem, c_start, p_cpu, p_mem, scrape)


def register(app: web.Application, driver: RuntimeDriver, node_name: str, *, scraper: PodScraper | None,
             fs_path: Path, volumes: VolumeStats | None = None) -> StatsCollector:
    """Add the stats routes to the agent's HTTPS app, sampling while the app runs. Given
    what it needs rather than the server, so that the server imports this module and not
    the other way round."""
    stats = StatsCollector(driver, node_name, scraper=scraper, fs_path=fs_path, volumes=volumes)
    registry = stats.prometheus()

    async def summary(request: web.Request) -> web.Response:
        return web.json_response(await stats.summary())

    async def metrics(request: web.Request) -> web.Response:
        await stats.rates()
        body = await asyncio.to_thread(generate_latest, registry)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def on_startup(app: web.Application) -> None:
        await stats.start()

    async def on_cleanup(app: web.Application) -> None:
        await stats.stop()

    app.router.add_get("/stats/summary", summary)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/metrics/resource", metrics)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return stats
