"""Waiting for a service to converge, reporting progress as ``docker service create`` does
("overall progress: 2 out of 3 tasks", then "verify: Service web converged")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bosun.client.rest import Client
from bosun.swarm.services import ServiceRef


async def converge(client: Client, svc: ServiceRef, say: Callable[[str], None], within: float) -> bool:
    """True once every task of the current spec runs (ready); False after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: tuple[int, int] | None = None
    while True:
        obj = await client.get(svc.kind.resource, svc.name, svc.namespace)
        done, want, converged = svc.kind.progress(obj)
        if (done, want) != last:
            say(f"overall progress: {done} out of {want} tasks")
            last = (done, want)
        if converged:
            say(f"verify: Service {svc.display} converged")
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.3)
