"""Phase 1: create / update / get / list throughput and latency with N concurrent clients.

Each client is its own connection pool, as N independent controllers or users would be. Each
task owns a disjoint slice of the pods, so updates never conflict and every PUT carries the
resourceVersion its own previous write returned (compare-and-swap, as real controllers do).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import PODS, Conflicts, CpuMeter, make_namespace, per_op_cpu
from _pods import make_pod, touch
from _stats import summarize
from bosun.client.errors import ApiError
from bosun.client.rest import Client


async def _run_tasks(
    clients: list[Client], work: Callable[[int, Client, list[float]], Awaitable[None]],
) -> tuple[list[float], float]:
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(work(k, c, latencies) for k, c in enumerate(clients)))
    return latencies, time.perf_counter() - start


async def run_throughput(
    clients: list[Client], meter: CpuMeter, namespace: str, pods: int, updates: int, gets: int,
    lists: int, label: str = "",
) -> dict[str, dict[str, Any]]:
    """All four verbs against one namespace of ``pods`` pods; returns a summary per verb."""
    n = len(clients)
    await make_namespace(clients[0], namespace)
    names = [f"pod-{i:05d}" for i in range(pods)]
    owned: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    seq = 0
    out: dict[str, dict[str, Any]] = {}
    conflicts = Conflicts()

    async def create(k: int, c: Client, lat: list[float]) -> None:
        for i in range(k, pods, n):
            body = make_pod(names[i], namespace, i)
            t = time.perf_counter()
            owned[k].append(await c.create(PODS, body, namespace))
            lat.append(time.perf_counter() - t)

    async def update(k: int, c: Client, lat: list[float]) -> None:
        nonlocal seq
        mine = owned[k]
        for j in range(updates // n):
            pod = mine[j % len(mine)]
            seq += 1
            touch(pod, seq)
            t = time.perf_counter()
            mine[j % len(mine)] = await conflicts.put(c, pod)
            lat.append(time.perf_counter() - t)

    async def get(k: int, c: Client, lat: list[float]) -> None:
        rnd = random.Random(k)
        for _ in range(gets // n):
            name = names[rnd.randrange(pods)]
            t = time.perf_counter()
            await c.get(PODS, name, namespace)
            lat.append(time.perf_counter() - t)

    server_errors: list[str] = []

    async def list_(k: int, c: Client, lat: list[float]) -> None:
        for _ in range(max(1, lists // n) if lists else 0):  # --lists 0: no list phase
            t = time.perf_counter()
            try:
                got = await c.list(PODS, namespace)
            except ApiError as exc:
                if exc.status < 500:
                    raise
                server_errors.append(f"{exc.status} {exc.message}"[:200])  # counted: the target is none
                continue
            except TimeoutError:  # no answer within the client's timeout: a failure as well
                server_errors.append("client timeout")
                continue
            lat.append(time.perf_counter() - t)
            if len(got.get("items") or []) != pods:
                raise RuntimeError(f"list returned {len(got.get('items') or [])} pods, want {pods}")

    for verb, work in (("create", create), ("update", update), ("get", get), ("list", list_)):
        with meter.measure(f"{label}-{verb}-n{n}") as cpu:
            lat, elapsed = await _run_tasks(clients, work)
        out[verb] = {**summarize(lat, elapsed), **per_op_cpu(cpu, len(lat))}
    out["list"]["errors"] = len(server_errors)
    out["list"]["errors_5xx"] = sum(1 for e in server_errors if e != "client timeout")
    out["list"]["timeouts"] = len(server_errors) - out["list"]["errors_5xx"]
    if server_errors:
        out["list"]["error_examples"] = sorted(set(server_errors))[:3]
    out["update"]["conflicts"] = conflicts.count
    if conflicts.examples:
        out["update"]["conflict_examples"] = conflicts.examples
    return out
