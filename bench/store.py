"""Store write throughput: creates/s with many concurrent writers and ~3 KB values.

    .venv/bin/python bench/store.py [--writers 50] [--count 20000] [--etcd host:port]
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


async def run(store: Store, writers: int, count: int, value: bytes) -> dict[str, float]:
    per = count // writers
    latencies: list[float] = []

    async def writer(w: int) -> None:
        for i in range(per):
            t = time.perf_counter()
            await store.create(f"/registry/pods/bench/w{w}-{i}", value)
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    t = time.perf_counter()
    items, _ = await store.list("/registry/pods/bench/")
    list_s = time.perf_counter() - t
    return {
        "writes": per * writers,
        "writes_per_s": per * writers / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "list_all_ms": list_s * 1000,
        "listed": len(items),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--writers", type=int, default=50)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--value-size", type=int, default=3000)
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
            result = await run(store, args.writers, args.count, value)
        finally:
            await store.close()
    result = {"backend": backend, "writers": args.writers, "value_bytes": len(value), **result}
    for k, v in result.items():
        print(f"{k:>14}  {v:.1f}" if isinstance(v, float) else f"{k:>14}  {v}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"store-{backend}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
