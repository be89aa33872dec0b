"""Rows shared by ``stack`` and ``service`` listings: services as ``docker service ls``
prints them and tasks as ``docker service ps`` prints them."""

from __future__ import annotations

from bosun.cli.common import CliError
from bosun.client.rest import Client
from bosun.compose.translate.placement import MAX_PER_NODE_ANNOTATION
from bosun.swarm.services import ServiceRef, published_ports, tasks
from bosun.swarm.tasks import BadFilter, as_tasks, matches, parse_filters

SERVICE_HEADER = ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]


def replicas(s: ServiceRef) -> str:
    """``2/3``, or ``2/3 (max 1 per node)`` as Docker shows a per-node cap."""
    cap = ((s.obj.get("metadata") or {}).get("annotations") or {}).get(MAX_PER_NODE_ANNOTATION)
    text = s.kind.replicas(s.obj)
    return f"{text} (max {cap} per node)" if cap else text


async def service_rows(client: Client, found: list[ServiceRef]) -> list[list[str]]:
    return [[s.id, s.display, s.mode, replicas(s), s.image, await published_ports(client, s)] for s in found]


async def task_rows(client: Client, found: list[ServiceRef], no_trunc: bool = False,
                    filters: dict[str, set[str]] | None = None) -> list[list[str]]:
    rows: list[list[str]] = []
    for s in found:
        rows.extend(t.row(no_trunc) for t in as_tasks(s.display, await tasks(client, s))
                    if matches(t, filters or {}))
    return rows


def filters_of(items: tuple[str, ...]) -> dict[str, set[str]]:
    """``-f`` values, or the one-line refusal Docker would give."""
    try:
        return parse_filters(items)
    except BadFilter as e:
        raise CliError(f"Error response from daemon: {e}") from None
