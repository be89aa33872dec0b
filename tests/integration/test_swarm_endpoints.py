"""The swarm's questions to a manager over its HTTPS port (bosun.api.swarm_endpoints), asked as
a joining machine asks them (bosun.swarm.joining): the CA to anyone, the role to a token holder,
the tokens to the admin only; rotated, foreign and worker-for-manager tokens are refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer

from bosun.api.swarm_endpoints import TOKENS_PATH
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import ApiError, Client
from bosun.security.bootstrap import new_token
from bosun.security.pki import ensure_pki
from bosun.swarm.joining import JoinError, discover


def address(server: RunningServer) -> str:
    return server.url.split("://", 1)[1]


async def admin(server: RunningServer, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with Client.from_kubeconfig(server.kubeconfig) as c:
        return await c.request(method, TOKENS_PATH, body=body)


def test_join_questions_and_refusals(fresh_server: RunningServer, tmp_path: Path) -> None:
    ca = Path(fresh_server.ca_path).read_bytes()
    foreign_ca = ensure_pki(tmp_path / "other", []).ca_cert_pem

    async def go() -> None:
        tokens = await admin(fresh_server, "GET")

        worker = await discover(address(fresh_server), tokens["worker"])
        assert (worker.role, worker.ca, worker.servers[0]) == ("worker", ca, fresh_server.url)

        # This server keeps its state in SQLite: no second manager can share it.
        with pytest.raises(JoinError, match="keeps its state in SQLite"):
            await discover(address(fresh_server), tokens["manager"])

        # A token minted for another CA is not even sent: the server is not its swarm.
        foreign = new_token(foreign_ca)
        with pytest.raises(JoinError, match="is not the one of the join token"):
            await discover(address(fresh_server), foreign)

        # Only the admin sees or rotates the tokens.
        async with Client(ClusterConfig(server=fresh_server.url, ca_data=ca, token=tokens["worker"])) as joiner:
            with pytest.raises(ApiError) as e:
                await joiner.request("GET", TOKENS_PATH)
            assert e.value.status == 403
        with pytest.raises(ApiError) as bad:
            await admin(fresh_server, "POST", {"rotate": "boss"})
        assert bad.value.status == 400 and "rotate: Unsupported value" in bad.value.message

        rotated = await admin(fresh_server, "POST", {"rotate": "worker"})
        assert rotated["worker"] != tokens["worker"] and rotated["manager"] == tokens["manager"]
        with pytest.raises(JoinError, match="not valid for this swarm"):
            await discover(address(fresh_server), tokens["worker"])
        assert (await discover(address(fresh_server), rotated["worker"])).role == "worker"
        with pytest.raises(JoinError, match="invalid join token"):
            await discover(address(fresh_server), "abcdef.0123456789abcdef")

    asyncio.run(go())
