"""An agent with the oci driver (in an :func:`~tests.integration.oci_env.oci_env`) joined to
a running API server, for tests of pods on real containers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.conftest import RunningServer
from tests.integration.helpers import agent_config, client_for, node_name
from tests.integration.oci_env import oci_env

from bosun.agent.agent import Agent
from bosun.client.rest import Client


@contextlib.asynccontextmanager
async def oci_node(server: RunningServer, tmp_path: Path, prefix: str,
                   **config: Any) -> AsyncIterator[tuple[Client, str]]:
    """(a client of the server, the node's name) while the node runs; ``config``: AgentConfig fields."""
    client = client_for(server)
    try:
        async with oci_env() as env:
            cfg = agent_config(tmp_path / "agent", node_name(tmp_path, prefix, keep=10), pod_cidr=env.subnet,
                               **config)
            agent = Agent(client, cfg, env.driver, node_ip="127.0.0.1")
            await agent.start()
            try:
                yield client, cfg.node_name
            finally:
                await agent.stop()
    finally:
        await client.close()
