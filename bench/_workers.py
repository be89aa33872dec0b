"""Phase: pod creates/s with N clients for each ``--api-workers`` count, side by side.

Each count gets a fresh server (same store kind, empty data directory) and the same load;
counts alternate run by run (1, 2, 1, 2, ...) so that a change in what else runs on the box
hits them alike, and the medians over the runs are what is compared.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from _common import PODS, CpuMeter, close_clients, make_namespace, open_clients, per_op_cpu
from _pods import make_pod
from _procs import Server, cpu_seconds, process_tree, remove_tree, start_server
from _stats import summarize
from bosun.client.rest import Client


def _connections(server: Server) -> list[int]:
    """Established client connections each API process holds (the first is the store owner):
    the busiest process's CPU per create follows that split. (The owner places them by weight,
    21/29 for 50 clients; servers that left it to SO_REUSEPORT's hash split 32/18 as well as 25/25.)"""
    url = yaml.safe_load(Path(server.kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    port = int(url.rsplit(":", 1)[1].strip("/"))
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED, our side
                inodes.add(f"socket:[{f[9]}]")
    out = []
    for pid in process_tree(server.pid):
        try:
            out.append(sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if os.readlink(fd) in inodes))
        except OSError:
            continue
    return out


def _per_process(pid: int) -> dict[int, float]:
    out = {}
    for p in process_tree(pid):
        try:
            out[p] = cpu_seconds(p)
        except OSError:
            continue
    return out


async def _creates(clients: list[Client], meter: CpuMeter, namespace: str, pods: int) -> dict[str, Any]:
    await make_namespace(clients[0], namespace)
    before = _per_process(meter.server.pid)
    n = len(clients)
    latencies: list[float] = []

    async def work(k: int, c: Client) -> None:
        for i in range(k, pods, n):
            t = time.perf_counter()
            await c.create(PODS, make_pod(f"pod-{i:05d}", namespace, i), namespace)
            latencies.append(time.perf_counter() - t)

    with meter.measure(f"{namespace}-create") as cpu:
        start = time.perf_counter()
        await asyncio.gather(*(work(k, c) for k, c in enumerate(clients)))
        elapsed = time.perf_counter() - start
    # How the work split between the API processes (the first is the store owner).
    split = [round(v - before.get(p, 0.0), 3) for p, v in _per_process(meter.server.pid).items()]
    # The busiest process's CPU per create bounds the rate the server reaches with a core per
    # process; on a box other work also uses, that is the figure that does not depend on it.
    busiest = round(max(split) * 1000 / len(latencies), 3) if latencies else 0.0
    return {**summarize(latencies, elapsed), **per_op_cpu(cpu, len(latencies)), "cpu_s_per_process": split,
            "busiest_cpu_ms_per_op": busiest}


async def run_workers(store: str, store_url: str, counts: list[int], runs: int, clients: int, pods: int,
                      controllers: str, tmp: Path) -> dict[str, Any]:
    """Every count ``runs`` times; returns the runs and the median of each figure per count."""
    samples: dict[str, list[dict[str, Any]]] = {str(c): [] for c in counts}
    for r in range(runs):
        for count in counts:
            print(f"[{store}] creates, {clients} clients, --api-workers {count}, run {r + 1}/{runs} ...",
                  file=sys.stderr, flush=True)
            data_dir = tmp / f"workers-{store}-{count}-{r}"
            server = start_server(data_dir, store_url, controllers, api_workers=count)
            try:
                conns = await open_clients(server, clients)
                try:
                    split = _connections(server)
                    print(f"[{store}] client connections per API process: {'/'.join(map(str, split))}",
                          file=sys.stderr, flush=True)
                    sample = await _creates(conns, CpuMeter(server), f"bench-w{count}", pods)
                    samples[str(count)].append({**sample, "connections_per_process": split})
                finally:
                    await close_clients(conns)
            finally:
                server.stop()
                remove_tree(data_dir)
    median = {c: {k: round(statistics.median(s[k] for s in ss), 3)
                  for k in ("ops_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_op", "busiest_cpu_ms_per_op",
                            "server_cpu_s", "loadgen_cpu_s",
                            "other_cpu_s", "wall_s")}
              for c, ss in samples.items()}
    return {"clients": clients, "pods": pods, "runs": samples, "median": median}
