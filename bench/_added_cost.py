"""The report of an in-process "what does X add to a write" benchmark: rounds alternating a
baseline with X, each round's median per write, and the median of what X added against a
target. One shape for every such bench (admission policies, quotas), so their tables and
result files read alike."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _cli import text_table, write_result
from bosun.api.catalog import Catalog
from bosun.api.nstracker import NamespaceTracker
from bosun.api.registry import Resource, must_by_plural
from bosun.api.storage import Storage
from bosun.api.watchcache import WatchCache
from bosun.store import open_store

NAMESPACES = must_by_plural("", "v1", "namespaces")


@dataclass
class InProcess:
    """The server's write path without HTTP: a real Storage on a SQLite store, its watch cache
    and the admission plugins reading from that cache, as the server wires them."""

    storage: Storage
    namespaces: NamespaceTracker

    async def namespace(self, name: str) -> None:
        """An Active namespace the plugins accept writes in (the tracker is told at once,
        without the namespace controller this bench does not run)."""
        await self.storage.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": name}})
        self.namespaces.phase[name] = "Active"

    async def timed_creates(self, res: Resource, ns: str | None, make: Callable[[str], dict[str, Any]],
                            prefix: str, n: int) -> list[float]:
        """ms per create of ``n`` objects ``make(f"{prefix}-{i}")``, one after another."""
        out = []
        for i in range(n):
            obj = make(f"{prefix}-{i}")
            t0 = time.perf_counter()
            await self.storage.create(res, ns, obj)
            out.append((time.perf_counter() - t0) * 1000)
        return out


@asynccontextmanager
async def in_process() -> AsyncIterator[InProcess]:
    """An InProcess on a store in a temporary directory, all of it stopped and removed after."""
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store("", Path(tmp))
        cache = WatchCache(store)
        await cache.start()
        namespaces = NamespaceTracker()
        storage = Storage(store, namespaces)
        storage.on_write = cache.remember
        try:
            await storage.policies.start(storage, cache, Catalog())
            yield InProcess(storage, namespaces)
        finally:
            await storage.policies.stop()
            await cache.stop()
            await store.close()


def report(name: str, rounds: list[dict[str, float]], label: str, *, target_ms: float, what: str,
           columns: tuple[str, str], header: dict[str, Any], result: dict[str, Any], out: Path | None) -> str:
    """Print the table (one row per round, then the medians) and write ``name-STAMP.json``
    to ``out`` (a directory; None: write nothing). ``rounds`` hold ``baseline`` and
    ``label`` ms/write; the verdict is on the median of their per-round difference."""
    base = statistics.median(r["baseline"] for r in rounds)
    with_x = statistics.median(r[label] for r in rounds)
    added = statistics.median(r[label] - r["baseline"] for r in rounds)
    verdict = "met" if added <= target_ms else "MISSED"
    print(f"loop speed {header['machine']['loop_mops']} Mops/s; {what}\n")
    rows = [[str(i + 1), f"{r['baseline']:.2f}", f"{r[label]:.2f}", f"{r[label] - r['baseline']:.2f}"]
            for i, r in enumerate(rounds)]
    rows.append(["median", f"{base:.2f}", f"{with_x:.2f}", f"{added:.2f} (target <= {target_ms:.0f}: {verdict})"])
    print(text_table(["round", *columns, "added ms"], rows))
    if out is not None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        write_result({**header, **result, "median_ms": {"baseline": base, label: with_x, "added": added},
                      "target_added_ms": target_ms, "verdict": verdict}, out / f"{name}-{stamp}.json")
    return verdict
