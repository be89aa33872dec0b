"""Phase 2: watch fan-out: W watchers on one namespace, one writer at a steady rate.

Delivery delay is taken on one clock (this process) from two points of a write: when it was
sent and when its response arrived. A watcher may see an event before the writer sees its
response, so "from response" can be negative; both are reported.

Watchers read the raw stream and only look for the sequence stamp instead of decoding each
event: the load generator shares the machine with the server, and decoding W copies of every
event in Python would measure the load generator rather than the server's delivery.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _common import PODS, Conflicts, CpuMeter, make_namespace, per_op_cpu
from _pods import SEQ_ANNOTATION, make_pod, touch
from _stats import summarize
from bosun.client.rest import Client, resource_path

_STAMP = f'"{SEQ_ANNOTATION}":"'.encode()


def _seq_in(line: bytes) -> int:
    at = line.find(_STAMP)
    if at < 0:
        return -1  # a bookmark, or an event without a stamp
    at += len(_STAMP)
    return int(line[at : line.index(b'"', at)])


async def _watcher(client: Client, namespace: str, rv: str, got: list[tuple[int, float]]) -> None:
    params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
    buf = b""
    async for chunk in client.stream(resource_path(PODS, namespace), params):
        now = time.perf_counter()
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            s = _seq_in(line)
            if s >= 0:
                got.append((s, now))


async def run_watch(
    watch_clients: list[Client], writers: list[Client], meter: CpuMeter, namespace: str,
    rate: float, duration: float, pool: int = 100, label: str = "",
) -> dict[str, Any]:
    """Writes at ``rate``/s for ``duration`` s (creates, then updates of ``pool`` pods)."""
    await make_namespace(writers[0], namespace)
    rv = str((await writers[0].list(PODS, namespace))["metadata"]["resourceVersion"])
    got: list[list[tuple[int, float]]] = [[] for _ in watch_clients]
    tasks = [
        asyncio.ensure_future(_watcher(c, namespace, rv, g)) for c, g in zip(watch_clients, got, strict=True)
    ]
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
            sent[seq] = time.perf_counter()
            latest[i] = await conflicts.put(writer, body)
        else:
            sent[seq] = time.perf_counter()
            latest[i] = await writer.create(PODS, make_pod(f"w-{i:04d}", namespace, i, seq), namespace)
        answered[seq] = time.perf_counter()

    try:
        # Seq 0 is a sentinel: once every watcher has it, every watch is live.
        await write(0, writers[0])
        deadline = time.monotonic() + 30
        while not all(g for g in got):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(1 for g in got if g)} of {len(got)} watchers started")
            await asyncio.sleep(0.02)
        for g in got:
            g.clear()
        total = int(rate * duration)
        pending: list[asyncio.Future[None]] = []
        with meter.measure(f"{label}-watch-{rate:g}") as cpu:
            start = time.perf_counter()
            for seq in range(1, total + 1):
                delay = start + seq / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                fut = asyncio.ensure_future(write(seq, writers[seq % len(writers)], busy.get(seq % pool)))
                busy[seq % pool] = fut
                pending.append(fut)
            await asyncio.gather(*pending)
            write_elapsed = time.perf_counter() - start
            deadline = time.monotonic() + 30
            # Polling the tail is fine: the delays were stamped on arrival, not here.
            while any(len(g) < total for g in got) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    from_send = [t - sent[s] for g in got for s, t in g if s in sent]
    from_resp = [t - answered[s] for g in got for s, t in g if s in answered]
    write_lat = [answered[s] - sent[s] for s in answered if s > 0]
    delivered = sum(len(g) for g in got)
    # When the slowest writes happened (seconds into the run): periodic stalls show up here.
    slow = sorted(((answered[s] - sent[s], sent[s] - start) for s in answered if s > 0), reverse=True)[:10]
    return {
        "watchers": len(watch_clients),
        "target_rate": rate,
        "writes": total,
        "achieved_rate": round(total / write_elapsed, 1),
        "expected_deliveries": total * len(watch_clients),
        "deliveries": delivered,
        "write": summarize(write_lat, write_elapsed),
        "delivery_from_send": summarize(from_send, write_elapsed),
        "delivery_from_response": {
            k: v for k, v in summarize(from_resp, write_elapsed).items() if k.endswith("_ms")
        },
        "conflicts": conflicts.count,
        "slowest_writes": [{"at_s": round(at, 2), "ms": round(d * 1000, 1)} for d, at in slow],
        **per_op_cpu(cpu, total),
    }
