"""The agent on the docker driver against a real control plane and a private Docker Engine
(docker_env): the fixtures the docker driver's test files share. A test file imports
``engine``, ``server`` and ``node``; each file gets an engine and an API server of its own."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from tests.conftest import RunningServer, served
from tests.integration.docker_env import private_dockerd
from tests.integration.helpers import agent_config, client_for, node_name

from bosun.agent.agent import Agent
from bosun.agent.runtime.docker import DockerDriver
from bosun.agent.runtime.docker_engine import LABEL_ROOT
from bosun.cli.node_cleanup import cleanup_node


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    with private_dockerd() as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from served(tmp_path_factory.mktemp("docker-agent-server"))


class Node:
    """An agent on the docker driver with a bridge, CNI network and podCIDR of its own."""

    def __init__(self, server: RunningServer, engine: str, data_dir: Path, name: str, **config: Any) -> None:
        tag = uuid.uuid4().hex[:6]
        self.bridge, self.network = f"bd{tag}", f"bosundocker{tag}"
        self.subnet = f"10.{int(tag[:2], 16) % 200 + 20}.{int(tag[2:4], 16)}.0/24"
        self.ipam = data_dir / "ipam"
        self.engine, self.server = engine, server
        self.client = client_for(server)
        self.config = agent_config(data_dir, name, pod_cidr=self.subnet, **config)
        self.agent: Agent | None = None

    def driver(self) -> DockerDriver:
        return DockerDriver(self.config.runtime_dir / "docker", "127.0.0.1", pod_cidr=self.subnet,
                            bridge=self.bridge, network_name=self.network, ipam_dir=str(self.ipam),
                            base_url=self.engine)

    async def start(self) -> Agent:
        self.agent = Agent(self.client, self.config, self.driver(), node_ip="127.0.0.1")
        await self.agent.start()
        return self.agent

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
            self.agent = None

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", self.server.kubeconfig, *args],
                              capture_output=True, text=True, timeout=30)


@pytest.fixture
async def node(server: RunningServer, engine: str, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    monkeypatch.setenv("DOCKER_HOST", engine)  # for cleanup_node, as a user's shell would say
    n = Node(server, engine, tmp_path / "agent", node_name(tmp_path, "docker", keep=10))
    try:
        yield n
    finally:
        with contextlib.suppress(Exception):
            await n.stop()
        await asyncio.to_thread(cleanup_node, n.config, "127.0.0.1", bridge=n.bridge, network_name=n.network,
                                ipam_dir=str(n.ipam))
        await n.client.close()
        left = await asyncio.to_thread(leftovers, n)
        assert not left, f"left behind: {left}"


def leftovers(n: Node) -> list[str]:
    """Containers of this node in the engine, IP leases, the bridge (removed after the check)."""
    left = ours(n.engine, n.config.runtime_dir / "docker")
    left += [f"lease {p.name}" for p in (n.ipam / n.network).glob("*") if p.name[0].isdigit()]
    if Path(f"/sys/class/net/{n.bridge}").exists():
        left.append(f"bridge {n.bridge}")
        subprocess.run(["ip", "link", "del", n.bridge], capture_output=True)
    return left


def ours(engine: str, root: Path) -> list[str]:
    client = docker.APIClient(base_url=engine, version="auto")
    try:
        return [c["Names"][0] for c in client.containers(all=True, filters={"label": f"{LABEL_ROOT}={root}"})]
    finally:
        client.close()


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod.get("status", {}).get("containerStatuses") or [] if c["name"] == name)
