"""Rows shared by ``stack`` and ``service`` listings: services as ``docker service ls``
prints them and tasks as ``docker service ps`` prints them."""

from __future__ import annotations

from bosun.client.rest import Client
from bosun.compose.translate.placement import MAX_PER_NODE_ANNOTATION
from bosun.swarm.services import ServiceRef, published_ports, tasks
from bosun.swarm.tasks import as_tasks

SERVICE_HEADER = ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]


def replicas(s: ServiceRef) -> str:
    """``2/3``, or ``2/3 (max 1 per node)`` as Docker shows a per-node cap."""
    cap = ((s.obj.get("metadata") or {}).get("annotations") or {}).get(MAX_PER_NODE_ANNOTATION)
    text = s.kind.replicas(s.obj)
    return f"{text} (max {cap} per node)" if cap else text


async def service_rows(client: Client, found: list[ServiceRef]) -> list[list[str]]:
    return [[s.id, s.display, s.mode, replicas(s), s.image, await published_ports(client, s)] for s in found]


async def task_rows(client: Client, found: list[ServiceRef], no_trunc: bool = False) -> list[list[str]]:
    rows: list[list[str]] = []
    for s in found:
        rows.extend(t.row(no_trunc) for t in as_tasks(s.display, await tasks(client, s)))
    return rows
