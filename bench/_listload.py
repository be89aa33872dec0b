"""Phase: many clients listing many pods at once (``--list-pods N --listers L``).

The pods are written before the server starts, through the API server's own write path
(:class:`bosun.api.storage.Storage`: defaults, admission, managedFields) into the store it
will open, so the stored objects are what API creates leave, without spending minutes of a
shared machine on N HTTP creates. Then L clients, each its own connection pool, list every
pod of the namespace ``rounds`` times at once. A list answered 5xx, or not answered within
the client's timeout, is counted: the target is none.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from _common import NAMESPACES, PODS, CpuMeter, per_op_cpu
from _pods import make_pod
from _procs import Server
from _stats import summarize
from bosun.api.nstracker import NamespaceTracker
from bosun.api.storage import Storage
from bosun.client.errors import ApiError
from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client, resource_path
from bosun.store.sqlite import SQLiteStore

NAMESPACE = "bench-list"
LIST_TIMEOUT = 120.0  # seconds a lister waits for one list before it counts as a failure


async def seed_into(data_dir: Path, pods: int, reuse: Path | None) -> None:
    """:func:`seed`, or a copy of the store ``reuse`` holds (seeded there first if empty):
    runs that alternate two trees then list the very same objects, and pay for writing
    them once."""
    if reuse is None:
        await seed(data_dir, pods)
        return
    if not (reuse / "state.db").exists():
        partial = reuse.with_name(reuse.name + ".partial")
        await asyncio.to_thread(shutil.rmtree, partial, True)
        await seed(partial, pods)
        await asyncio.to_thread(partial.rename, reuse)  # only a whole store is ever reused
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    for f in await asyncio.to_thread(lambda: sorted(reuse.glob("state.db*"))):
        await asyncio.to_thread(shutil.copyfile, f, data_dir / f.name)


async def seed(data_dir: Path, pods: int) -> None:
    """``pods`` pods in NAMESPACE, in the SQLite store ``bosun server`` opens in ``data_dir``."""
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    store = await SQLiteStore.open(data_dir / "state.db")
    try:
        tracker = NamespaceTracker()
        storage = Storage(store, tracker)
        ns = await storage.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": NAMESPACE}}, manager="bench")
        tracker.observe(ns, NAMESPACE, False)
        sem = asyncio.Semaphore(8)  # a few writes at a time: the machine is shared

        async def one(i: int) -> None:
            async with sem:
                await storage.create(PODS, NAMESPACE, make_pod(f"pod-{i:05d}", NAMESPACE, i), manager="bench")

        await asyncio.gather(*(one(i) for i in range(pods)))
    finally:
        await store.close()


async def open_listers(server: Server, n: int) -> list[Client]:
    """``n`` clients (own pools, connected) whose requests may take LIST_TIMEOUT seconds."""
    clients = [Client(load_kubeconfig(str(server.kubeconfig)), timeout=LIST_TIMEOUT) for _ in range(n)]
    for c in clients:
        await c.get(NAMESPACES, "default")
    return clients


async def run_list_load(clients: list[Client], meter: CpuMeter, pods: int, rounds: int,
                        label: str = "") -> dict[str, Any]:
    lat: list[float] = []
    failures: list[str] = []

    async def lister(c: Client) -> None:
        for _ in range(rounds):
            t = time.perf_counter()
            try:
                body = await c.request_raw("GET", resource_path(PODS, NAMESPACE))
            except ApiError as exc:
                if exc.status < 500:
                    raise
                failures.append(f"{exc.status} {exc.message}")
                continue
            except TimeoutError:
                failures.append("client timeout")
                continue
            lat.append(time.perf_counter() - t)
            # Counted, not parsed: parsing L copies of N pods in Python would measure this
            # process rather than the server (``"kind":"Pod"`` is each item's, the list's is
            # ``"kind":"PodList"``).
            got = body.count(b'"kind":"Pod"')
            if got != pods:
                raise RuntimeError(f"list returned {got} pods, want {pods}")

    with meter.measure(f"{label}-listload") as cpu:
        start = time.perf_counter()
        await asyncio.gather(*(lister(c) for c in clients))
        elapsed = time.perf_counter() - start
    errors_5xx = sum(1 for f in failures if f != "client timeout")
    out: dict[str, Any] = {"pods": pods, "listers": len(clients), "lists": len(clients) * rounds,
                           **summarize(lat, elapsed), **per_op_cpu(cpu, len(clients) * rounds),
                           "errors_5xx": errors_5xx, "timeouts": len(failures) - errors_5xx}
    if failures:
        out["error_examples"] = sorted(set(failures))[:3]
    return out
