"""Rows shared by ``stack`` and ``service`` listings: services as ``docker service ls``
prints them and tasks as ``docker service ps`` prints them."""

from __future__ import annotations

from bosun.client.rest import Client
from bosun.swarm.services import ServiceRef, published_ports, tasks
from bosun.swarm.tasks import as_tasks

SERVICE_HEADER = ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]


async def service_rows(client: Client, found: list[ServiceRef]) -> list[list[str]]:
    return [[s.id, s.display, s.mode, s.kind.replicas(s.obj), s.image, await published_ports(client, s)]
            for s in found]


async def task_rows(client: Client, found: list[ServiceRef], no_trunc: bool = False) -> list[list[str]]:
    rows: list[list[str]] = []
    for s in found:
        rows.extend(t.row(no_trunc) for t in as_tasks(s.display, await tasks(client, s)))
    return rows
