"""One measured step: N pods created at once, watched until every one is Running and Ready.

Latency is taken on one clock (this process) from just before a pod's create request is
sent to the first watch event showing it Running, and Ready: what a user running
`kubectl apply` then `kubectl get -w` would see. The intermediate marks say where the time
went when a target is missed: bound to the node (watch), then from the oci driver's files of
the pod's container (same machine, wall clock in ms): the shim started (``pid``: the agent's
sandbox, CNI and bundle work is before it), the runtime wrote ``container.pid`` (the
runtime's create), and the watcher saw it Running (status path). The API's ``startedAt``
has whole seconds only, too coarse for this (it made the old breakdown negative).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import NODES, PODS, make_namespace
from _stats import percentile
from bosun.client.errors import ApiError
from bosun.client.rest import Client

GRACE_SECONDS = 1
"""`sleep` is PID 1 of its own PID namespace and so ignores SIGTERM: without a short grace
period every deletion would wait the default 30 s for SIGKILL."""


VARIANTS = ("plain", "probe", "hostnet")
"""plain: `sleep 3600`; probe: the same with an exec readiness probe every second; hostnet:
plain with hostNetwork, which skips the CNI plugins and so shows what the pod network costs."""


def bench_pod(name: str, variant: str, image: str = "host") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "command": ["sleep", "3600"]}
    if variant == "probe":
        container["readinessProbe"] = {"exec": {"command": ["true"]}, "periodSeconds": 1}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": GRACE_SECONDS}
    if variant == "hostnet":
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "podbench"}},
            "spec": spec}


@dataclass
class _Marks:
    created: float = 0.0
    created_wall: float = 0.0
    bound: float | None = None
    running: float | None = None
    ready: float | None = None
    container_id: str = ""
    shim_wall: float | None = None
    container_wall: float | None = None

    def wall(self, t: float | None) -> float | None:
        """A mark of this process' perf_counter clock on the wall clock."""
        return None if t is None else self.created_wall + (t - self.created)


@dataclass
class _Tracker:
    """Folds watch events into first-seen times per pod; ``done`` fires when all are Ready."""

    expected: int
    marks: dict[str, _Marks] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ready_count: int = 0

    def see(self, pod: dict[str, Any], now: float) -> None:
        m = self.marks.setdefault(pod["metadata"]["name"], _Marks())
        status = pod.get("status") or {}
        if m.bound is None and (pod.get("spec") or {}).get("nodeName"):
            m.bound = now
        if m.running is None and status.get("phase") == "Running":
            m.running = now
        if not m.container_id:
            for cs in status.get("containerStatuses") or []:
                m.container_id = str(cs.get("containerID") or "").partition("://")[2]
        if m.ready is None and any(c.get("type") == "Ready" and c.get("status") == "True"
                                   for c in status.get("conditions") or []):
            m.ready = now
            self.ready_count += 1
            if self.ready_count >= self.expected:
                self.done.set()


async def _watch(client: Client, namespace: str, rv: str, tracker: _Tracker) -> None:
    async for event in client.watch(PODS, namespace, resource_version=rv):
        now = time.perf_counter()
        if event.get("type") in ("ADDED", "MODIFIED"):
            tracker.see(event["object"], now)


async def _create(client: Client, namespace: str, name: str, variant: str, tracker: _Tracker, image: str) -> None:
    m = tracker.marks.setdefault(name, _Marks())
    m.created, m.created_wall = time.perf_counter(), time.time()
    await client.create(PODS, bench_pod(name, variant, image), namespace)


def _ms_stats(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    return {
        "p10_ms": round(percentile(v, 0.10) * 1000, 1),
        "p50_ms": round(percentile(v, 0.50) * 1000, 1),
        "p90_ms": round(percentile(v, 0.90) * 1000, 1),
        "p99_ms": round(percentile(v, 0.99) * 1000, 1),
        "max_ms": round((v[-1] if v else 0.0) * 1000, 1),
    }


def _container_files(tracker: _Tracker, data_dir: Path | None) -> None:
    """Shim start and container creation times from the oci driver's container directories."""
    if data_dir is None:
        return
    containers: Path | None = None
    for m in tracker.marks.values():
        if not m.container_id:
            continue
        if containers is None:
            found = next(data_dir.glob(f"**/containers/{m.container_id}"), None)
            if found is None:
                return  # not the oci driver
            containers = found.parent
        d = containers / m.container_id
        with contextlib.suppress(OSError, ValueError, IndexError):
            m.shim_wall = float((d / "pid").read_text().split()[2])
        with contextlib.suppress(OSError):
            m.container_wall = os.stat(d / "container.pid").st_mtime


def _summary(tracker: _Tracker, t0: float) -> dict[str, Any]:
    ms = list(tracker.marks.values())
    running = [m.running - m.created for m in ms if m.running is not None]
    ready = [m.ready - m.created for m in ms if m.ready is not None]
    bound = [m.bound - m.created for m in ms if m.bound is not None]
    to_shim = [m.shim_wall - m.created_wall for m in ms if m.shim_wall is not None]
    runtime = [m.container_wall - m.shim_wall for m in ms if m.container_wall and m.shim_wall]
    seen = [w - m.container_wall for m in ms if m.container_wall and (w := m.wall(m.running)) is not None]
    last_running = max((m.running for m in ms if m.running is not None), default=t0)
    last_ready = max((m.ready for m in ms if m.ready is not None), default=t0)
    return {
        "pods": tracker.expected,
        "running": len(running), "ready": len(ready),
        "all_running_s": round(last_running - t0, 3) if len(running) == tracker.expected else None,
        "all_ready_s": round(last_ready - t0, 3) if len(ready) == tracker.expected else None,
        "create_to_running": _ms_stats(running),
        "create_to_ready": _ms_stats(ready),
        "breakdown": {
            "create_to_bound": _ms_stats(bound),
            "create_to_shim_started": _ms_stats(to_shim),
            "shim_to_container_created": _ms_stats(runtime),
            "container_created_to_running_seen": _ms_stats(seen),
        },
    }


async def run_pods(client: Client, namespace: str, n: int, variant: str, wait_s: float = 120,
                   data_dir: Path | None = None, image: str = "host") -> dict[str, Any]:
    """Create ``n`` pods concurrently in a fresh ``namespace`` and wait until all are Ready;
    ``data_dir`` (of `bosun up`) gives the breakdown from the driver's container files."""
    await make_namespace(client, namespace)
    listing = await client.list(PODS, namespace)
    tracker = _Tracker(n)
    watcher = asyncio.create_task(_watch(client, namespace, listing["metadata"]["resourceVersion"], tracker))
    try:
        await asyncio.sleep(0.2)  # the watch is established before the first create
        t0 = time.perf_counter()
        await asyncio.gather(*(_create(client, namespace, f"pod-{i:03d}", variant, tracker, image) for i in range(n)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.done.wait(), wait_s)
        _container_files(tracker, data_dir)
        return _summary(tracker, t0)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, ApiError):
            await watcher


async def delete_pods(client: Client, namespace: str, wait_s: float = 120) -> float:
    """Delete every pod of the step and wait until the API no longer has them; seconds taken."""
    t0 = time.perf_counter()
    pods = (await client.list(PODS, namespace))["items"]
    await asyncio.gather(*(client.delete(PODS, p["metadata"]["name"], namespace) for p in pods),
                         return_exceptions=True)
    deadline = t0 + wait_s
    while (await client.list(PODS, namespace))["items"]:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"pods of {namespace} still there after {wait_s} s")
        await asyncio.sleep(0.2)
    return round(time.perf_counter() - t0, 3)


async def wait_node_ready(client: Client, name: str, wait_s: float = 60) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < wait_s:
        try:
            node = await client.get(NODES, name)
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (node.get("status") or {}).get("conditions") or []):
                return round(time.perf_counter() - t0, 3)
        except Exception:  # the node registers a moment after `ready`
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"node {name} not Ready after {wait_s} s")
