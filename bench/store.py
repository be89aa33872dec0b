"""Store write throughput: creates/s with many concurrent writers and ~3 KB values.

    .venv/bin/python bench/store.py [--writers 50] [--count 20000] [--watchers 0] [--etcd host:port]

"watch" latency is from the start of the write call to its arrival at each watcher.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

from bosun.store.base import Store


async def run(store: Store, writers: int, count: int, value: bytes, watchers: int) -> dict[str, float]:
    per = count // writers
    latencies: list[float] = []
    sent: dict[str, float] = {}
    delays: list[float] = []

    async def writer(w: int) -> None:
        for i in range(per):
            key = f"/registry/pods/bench/w{w}-{i}"
            t = sent[key] = time.perf_counter()
            await store.create(key, value)
            latencies.append(time.perf_counter() - t)

    async def watcher(from_rev: int) -> None:
        seen = 0
        async for ev in store.watch("/registry/pods/bench/", from_rev):
            delays.append(time.perf_counter() - sent[ev.key])
            seen += 1
            if seen == per * writers:
                return

    from_rev = await store.current_revision()
    watching = [asyncio.ensure_future(watcher(from_rev)) for _ in range(watchers)]
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*watching)
    latencies.sort()
    delays.sort()
    t = time.perf_counter()
    items, _ = await store.list("/registry/pods/bench/")
    list_s = time.perf_counter() - t
    return {
        "writes": per * writers,
        "writes_per_s": per * writers / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "list_all_ms": list_s * 1000,
        "watch_p50_ms": delays[len(delays) // 2] * 1000 if delays else 0.0,
        "watch_p99_ms": delays[int(len(delays) * 0.99)] * 1000 if delays else 0.0,
        "listed": len(items),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--writers", type=int, default=50)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--value-size", type=int, default=3000)
    ap.add_argument("--watchers", type=int, default=0, help="watches receiving every write meanwhile")
    ap.add_argument("--etcd", default="", help="host:port of an etcd to measure instead of SQLite")
    args = ap.parse_args()
    value = json.dumps({"pad": "x" * args.value_size}).encode()[: args.value_size]
    with tempfile.TemporaryDirectory() as tmp:
        store: Store
        if args.etcd:
            from bosun.store.etcd import EtcdStore

            store = await EtcdStore.open([args.etcd], prefix=f"/bench-{uuid.uuid4().hex[:8]}")
            backend = "etcd"
        else:
            from bosun.store.sqlite import SQLiteStore

            store = await SQLiteStore.open(Path(tmp) / "state.db")
            backend = "sqlite"
        try:
            measured = await run(store, args.writers, args.count, value, args.watchers)
        finally:
            await store.close()
    result: dict[str, object] = {
        "backend": backend,
        "writers": args.writers,
        "watchers": args.watchers,
        "value_bytes": len(value),
        **measured,
    }
    for k, v in result.items():
        print(f"{k:>14}  {v:.1f}" if isinstance(v, float) else f"{k:>14}  {v}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"store-{backend}-w{args.watchers}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
