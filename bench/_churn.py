"""Phase 3: does the SQLite file (and list latency) stay flat under constant churn?

A store that keeps every old revision grows without bound and its lists slow down as pages
fill with dead rows; compaction must keep both flat. We update the same pods over and over
and sample the file size and list latency at fixed intervals.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from _common import PODS, Conflicts, make_namespace
from _pods import make_pod, touch
from bosun.client.rest import Client


def sqlite_bytes(data_dir: Path) -> dict[str, int]:
    """Sizes of the database, its WAL and shared-memory files (the WAL counts too on disk)."""
    out = {}
    for suffix in ("", "-wal", "-shm"):
        p = data_dir / f"state.db{suffix}"
        out[f"db{suffix.replace('-', '_')}_bytes"] = p.stat().st_size if p.exists() else 0
    return out


async def _list_ms(client: Client, namespace: str, pods: int, times: int = 3) -> float:
    samples = []
    for _ in range(times):
        t = time.perf_counter()
        got = await client.list(PODS, namespace)
        samples.append(time.perf_counter() - t)
        if len(got.get("items") or []) != pods:
            raise RuntimeError(f"list returned {len(got.get('items') or [])} pods, want {pods}")
    return round(statistics.median(samples) * 1000, 2)


async def run_churn(
    clients: list[Client], data_dir: Path, namespace: str, pods: int, updates: int, every: int,
) -> list[dict[str, Any]]:
    """``updates`` PUTs spread over ``pods`` pods by all clients; a sample every ``every``."""
    n = len(clients)
    await make_namespace(clients[0], namespace)
    owned: list[list[dict[str, Any]]] = [[] for _ in range(n)]

    async def create(k: int) -> None:
        for i in range(k, pods, n):
            owned[k].append(await clients[k].create(PODS, make_pod(f"c-{i:05d}", namespace, i), namespace))

    await asyncio.gather(*(create(k) for k in range(n)))
    samples: list[dict[str, Any]] = []

    def sample(done: int, rate: float) -> None:
        row = {"updates": done, "updates_per_s": round(rate, 1), **sqlite_bytes(data_dir)}
        samples.append(row)

    sample(0, 0.0)
    samples[-1]["list_ms"] = await _list_ms(clients[0], namespace, pods)
    seq = 0
    done = 0
    conflicts = Conflicts()
    while done < updates:
        step = min(every, updates - done)

        async def update(k: int, count: int) -> None:
            nonlocal seq
            mine = owned[k]
            for j in range(count):
                seq += 1
                pod = mine[j % len(mine)]
                touch(pod, seq)
                mine[j % len(mine)] = await conflicts.put(clients[k], pod)

        t = time.perf_counter()
        await asyncio.gather(*(update(k, step // n + (1 if k < step % n else 0)) for k in range(n)))
        done += step
        sample(done, step / (time.perf_counter() - t))
        samples[-1]["list_ms"] = await _list_ms(clients[0], namespace, pods)
        samples[-1]["conflicts"] = conflicts.count
    return samples
