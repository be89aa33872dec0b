"""What every phase shares: the pod resource, clients, namespaces and CPU accounting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from _procs import Server
from bosun.api.registry import Resource, by_plural
from bosun.client.rest import Client


def _resource(plural: str) -> Resource:
    res = by_plural("", "v1", plural)
    assert res is not None, plural
    return res


PODS = _resource("pods")
NAMESPACES = _resource("namespaces")


async def open_clients(server: Server, n: int) -> list[Client]:
    """``n`` clients, each with its own connection pool, already connected (TLS handshake done)."""
    clients = [Client.from_kubeconfig(server.kubeconfig) for _ in range(n)]
    for c in clients:
        await c.get(NAMESPACES, "default")
    return clients


async def close_clients(clients: list[Client]) -> None:
    for c in clients:
        await c.close()


async def make_namespace(client: Client, name: str) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@dataclass
class CpuMeter:
    """CPU seconds used by the server and by this load generator during a block."""

    server: Server
    result: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        s0, l0, w0 = self.server.cpu(), time.process_time(), time.perf_counter()
        out: dict[str, float] = {}
        try:
            yield out
        finally:
            wall = time.perf_counter() - w0
            out["server_cpu_s"] = round(self.server.cpu() - s0, 3)
            out["loadgen_cpu_s"] = round(time.process_time() - l0, 3)
            out["wall_s"] = round(wall, 3)


def per_op_cpu(cpu: dict[str, float], ops: int) -> dict[str, Any]:
    """Server CPU per operation: the number that says what the server, not the box, can do."""
    if not ops:
        return cpu
    return {**cpu, "server_cpu_ms_per_op": round(cpu["server_cpu_s"] * 1000 / ops, 3)}
