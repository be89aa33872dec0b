"""What every phase shares: the pod resource, clients, namespaces and CPU accounting."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _procs import CLK_TCK, Server, cpu_seconds
from _profile import start_profile, stop_profile
from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

PODS = must_by_plural("", "v1", "pods")
NAMESPACES = must_by_plural("", "v1", "namespaces")
NODES = must_by_plural("", "v1", "nodes")


async def open_clients(server: Server, n: int) -> list[Client]:
    """``n`` clients, each with its own connection pool, already connected (TLS handshake done)."""
    clients = [Client.from_kubeconfig(server.kubeconfig) for _ in range(n)]
    for c in clients:
        await c.get(NAMESPACES, "default")
    return clients


@dataclass
class Conflicts:
    """409s on PUTs: each task owns its pods, so another writer (the scheduler marking a pod
    Unschedulable, since there are no nodes) touched the pod in between.

    Counted and retried as a controller would, so the count shows how often it happens."""

    count: int = 0
    examples: list[str] | None = None

    async def put(self, client: Client, pod: dict[str, Any], attempts: int = 20) -> dict[str, Any]:
        """PUT ``pod``; on 409 re-read the stored version and retry, as a controller would."""
        for _ in range(attempts - 1):
            try:
                return await client.update(PODS, pod)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                self.count += 1
                self.examples = [*(self.examples or [])[:4], str(exc)[:200]]
                m = pod["metadata"]
                current = await client.get(PODS, m["name"], m["namespace"])
                m["resourceVersion"] = current["metadata"]["resourceVersion"]
        return await client.update(PODS, pod)


async def close_clients(clients: list[Client]) -> None:
    for c in clients:
        await c.close()


async def make_namespace(client: Client, name: str) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@dataclass
class CpuMeter:
    """CPU seconds used by the server and by this load generator during a block.

    With ``profile_dir`` set, py-spy also samples the server during each block and leaves a
    raw (collapsed-stack) profile per block there, so a missed target comes with its evidence.
    """

    server: Server
    profile_dir: Path | None = None
    etcd_pid: int | None = None

    @contextmanager
    def measure(self, label: str) -> Iterator[dict[str, float]]:
        spy = self._start_profile(label)
        s0, l0, w0 = self.server.cpu(), time.process_time(), time.perf_counter()
        e0, b0 = self._etcd_cpu(), box_busy_seconds()
        out: dict[str, float] = {}
        try:
            yield out
        finally:
            if spy is not None:
                stop_profile(spy, timeout=30)
            wall = time.perf_counter() - w0
            out["server_cpu_s"] = round(self.server.cpu() - s0, 3)
            out["loadgen_cpu_s"] = round(time.process_time() - l0, 3)
            out["wall_s"] = round(wall, 3)
            if self.etcd_pid is not None:
                out["etcd_cpu_s"] = round(self._etcd_cpu() - e0, 3)
            # Other helpers share this machine: what they used is reported, not hidden.
            others = box_busy_seconds() - b0 - sum(v for k, v in out.items() if k.endswith("_cpu_s"))
            out["other_cpu_s"] = round(max(0.0, others), 3)

    def _etcd_cpu(self) -> float:
        return cpu_seconds(self.etcd_pid) if self.etcd_pid is not None else 0.0


    def _start_profile(self, label: str) -> subprocess.Popen[bytes] | None:
        if self.profile_dir is None:
            return None
        return start_profile(self.server.pid, self.profile_dir / f"{label}.txt", 200, "--format", "raw",
                             "--threads", settle=0.3)


def box_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def per_op_cpu(cpu: dict[str, float], ops: int) -> dict[str, Any]:
    """Server CPU per operation: the number that says what the server, not the box, can do."""
    if not ops:
        return cpu
    return {**cpu, "server_cpu_ms_per_op": round(cpu["server_cpu_s"] * 1000 / ops, 3)}
