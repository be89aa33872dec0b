"""A published port belongs to one service, as in Swarm: before writing a service, its
published ports are checked against every Service of the cluster (its node ports, which are
the published numbers: :mod:`bosun.api.published`). The server refuses the same through its
node-port allocator; asking first gives Docker's message before anything is written."""

from __future__ import annotations

from typing import Any

from bosun.api import published as mesh
from bosun.client.rest import Client
from bosun.swarm.services import SERVICES

JSON = dict[str, Any]


class PortInUse(Exception):
    """A published port another service already publishes (Swarm refuses it the same way)."""


def published(obj: JSON) -> set[tuple[int, str]]:
    """(port, protocol) pairs a Service publishes on every node."""
    out: set[tuple[int, str]] = set()
    for p in (obj.get("spec") or {}).get("ports") or []:
        if p.get("nodePort"):
            out.add((int(p["nodePort"]), str(p.get("protocol") or "TCP").lower()))
    return out | mesh.declared(obj)


async def port_conflicts(client: Client, objects: list[JSON]) -> list[str]:
    """Docker's refusal for each published port another service already has."""
    mine = [o for o in objects if o.get("kind") == "Service"]
    wanted = set().union(*(published(o) for o in mine)) if mine else set()
    if not wanted:
        return []
    names = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in mine}
    items, _ = await client.list_all(SERVICES, None)
    out = []
    for obj in items:
        meta = obj.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) in names:
            continue
        for port, proto in sorted(wanted & published(obj)):
            out.append(f"port '{port}/{proto}' is already in use by service '{meta.get('name')}' "
                       f"(namespace {meta.get('namespace')})")
    return out
