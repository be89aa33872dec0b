"""Finding a named service for a verb, with Docker's one-line refusal when there is none."""

from __future__ import annotations

from bosun.cli.common import CliState, fail
from bosun.client.rest import Client
from bosun.swarm.services import ServiceRef, find_service


async def must_find(client: Client, state: CliState, name: str) -> ServiceRef:
    found = await find_service(client, name, state.default_namespace)
    if found is None:
        fail(f"Error: no such service: {name}")
    return found
