"""Phase 2: watch fan-out: W watchers on one namespace, one writer at a steady rate.

Delivery delay is taken on one clock (time.monotonic, system-wide) from two points of a write:
when it was sent and when its response arrived. A watcher may see an event before the writer
sees its response, so "from response" can be negative; both are reported.

The watchers run in ``procs`` processes of their own (:mod:`_watchers`; 0: in this one), so
that reading W streams does not delay the writers' sends nor the stamping of arrivals.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from _common import PODS, Conflicts, CpuMeter, close_clients, make_namespace, open_clients, per_op_cpu
from _pods import make_pod, touch
from _procs import Server
from _stats import summarize
from _watchers import InProcess, Processes, Watchers
from bosun.client.rest import Client


async def run_watch(
    server: Server, n_watchers: int, procs: int, writers: list[Client], meter: CpuMeter,
    namespace: str, rate: float, duration: float, pool: int = 100, label: str = "",
) -> dict[str, Any]:
    """Writes at ``rate``/s for ``duration`` s (creates, then updates of ``pool`` pods), watched
    by ``n_watchers`` in this process (``procs`` 0) or spread over ``procs`` processes."""
    await make_namespace(writers[0], namespace)
    rv = str((await writers[0].list(PODS, namespace))["metadata"]["resourceVersion"])
    watch_clients = await open_clients(server, n_watchers) if procs == 0 else []
    watchers: Watchers = (InProcess(watch_clients, namespace, rv) if procs == 0 else
                          Processes(server.kubeconfig, namespace, rv, n_watchers, procs))
    sent: dict[int, float] = {}
    answered: dict[int, float] = {}
    latest: dict[int, dict[str, Any]] = {}
    busy: dict[int, asyncio.Future[None]] = {}
    conflicts = Conflicts()

    async def write(seq: int, writer: Client, before: asyncio.Future[None] | None = None) -> None:
        i = seq % pool
        if before is not None:  # one write per pod at a time: each carries the previous version
            await before
        if i in latest:
            body = latest[i]
            touch(body, seq)
            sent[seq] = time.monotonic()
            latest[i] = await conflicts.put(writer, body)
        else:
            sent[seq] = time.monotonic()
            latest[i] = await writer.create(PODS, make_pod(f"w-{i:04d}", namespace, i, seq), namespace)
        answered[seq] = time.monotonic()

    try:
        # Seq 0 is a sentinel: once every watcher has it, every watch is live.
        await write(0, writers[0])
        await watchers.live()
        await watchers.clear()
        total = int(rate * duration)
        pending: list[asyncio.Future[None]] = []
        load_before = os.getloadavg()[0]
        with meter.measure(f"{label}-watch-{rate:g}") as cpu:
            start = time.monotonic()
            for seq in range(1, total + 1):
                delay = start + seq / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                fut = asyncio.ensure_future(write(seq, writers[seq % len(writers)], busy.get(seq % pool)))
                busy[seq % pool] = fut
                pending.append(fut)
            await asyncio.gather(*pending)
            write_elapsed = time.monotonic() - start
            got, watchers_cpu = await watchers.collect(total)
    finally:
        await watchers.close()
        await close_clients(watch_clients)
    if watchers_cpu:  # the watcher processes' CPU is the load generator's, not other work's
        cpu["other_cpu_s"] = round(max(0.0, cpu["other_cpu_s"] - watchers_cpu), 3)

    from_send = [t - sent[s] for g in got for s, t in g if s in sent]
    from_resp = [t - answered[s] for g in got for s, t in g if s in answered]
    write_lat = [answered[s] - sent[s] for s in answered if s > 0]
    delivered = sum(len(g) for g in got)
    # When the slowest writes happened (seconds into the run): periodic stalls show up here.
    slow = sorted(((answered[s] - sent[s], sent[s] - start) for s in answered if s > 0), reverse=True)[:10]
    return {
        "watchers": n_watchers,
        "watcher_procs": procs,
        # The machine is shared: its 1-minute load average before and after the timed writes.
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "target_rate": rate,
        "writes": total,
        "achieved_rate": round(total / write_elapsed, 1),
        "expected_deliveries": total * n_watchers,
        "deliveries": delivered,
        "write": summarize(write_lat, write_elapsed),
        "delivery_from_send": summarize(from_send, write_elapsed),
        "delivery_from_response": {
            k: v for k, v in summarize(from_resp, write_elapsed).items() if k.endswith("_ms")
        },
        "conflicts": conflicts.count,
        "slowest_writes": [{"at_s": round(at, 2), "ms": round(d * 1000, 1)} for d, at in slow],
        **per_op_cpu(cpu, total),
        "watchers_cpu_s": round(watchers_cpu, 3),
    }
