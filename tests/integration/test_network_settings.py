"""The cluster's network settings as a user meets them: `bosun server` flags checked before
anything starts, published as ConfigMap kube-system/bosun-network (and updated when the
flags change), Service IPs from --service-cidr, and an agent taking its podCIDR from the
control plane's IPAM controller, or saying why it cannot."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import start_server
from tests.integration.helpers import agent_config, client_for, eventually

from bosun.agent.agent import Agent
from bosun.agent.runtime.process import ProcessDriver
from bosun.client.rest import Client
from bosun.controllers._common import NODES, resource
from bosun.controlplane import ControlPlaneOptions
from bosun.network.config import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, NetworkConfig
from bosun.network.node import load_network_config

pytestmark = pytest.mark.timeout(120)
CONFIGMAPS, SERVICES = resource("", "v1", "configmaps"), resource("", "v1", "services")


@pytest.mark.parametrize(("flags", "named"), [
    (["--cluster-cidr", "10.96.0.0/12"], ("--cluster-cidr", "--service-cidr")),
    (["--service-cidr", "10.244.128.0/20"], ("--cluster-cidr", "--service-cidr")),
    (["--node-cidr-mask-size", "12"], ("--node-cidr-mask-size", "--cluster-cidr")),
    (["--cluster-cidr", "10.300.0.0/16"], ("--cluster-cidr",)),
    (["--cluster-cidr", "fd00:10::/48"], ("--cluster-cidr", "IPv4")),
])
@pytest.mark.parametrize("command", ["server", "up"])
def test_bad_settings_are_refused_before_anything_starts(tmp_path: Path, command: str, flags: list[str],
                                                         named: tuple[str, ...]) -> None:
    data = tmp_path / "data"
    done = subprocess.run([str(Path(sys.executable).parent / "bosun"), command, "--data-dir", str(data),
                           "--listen", "127.0.0.1:0", *flags], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and all(n in lines[0] for n in named), lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not data.exists()  # nothing was made


async def test_settings_are_published_and_service_ips_come_from_the_service_cidr(tmp_path: Path) -> None:
    first = NetworkConfig(cluster_cidr="10.66.0.0/16", service_cidr="10.55.0.0/16", backend="host-gw",
                          cluster_domain="example.internal")
    running = start_server(tmp_path / "s", network=first)
    try:
        client = client_for(running)
        try:
            cm = await client.get(CONFIGMAPS, CONFIGMAP_NAME, namespace=CONFIGMAP_NAMESPACE)
            assert cm["data"]["clusterCIDR"] == "10.66.0.0/16" and cm["data"]["backend"] == "host-gw"
            assert await load_network_config(client) == first
            svc = await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                                 "spec": {"ports": [{"port": 80}]}}, "default")
            assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network("10.55.0.0/16")
        finally:
            await client.close()
    finally:
        running.stop()
    # Started again with other flags: the one copy the nodes read follows.
    second = NetworkConfig(cluster_cidr="10.67.0.0/16", service_cidr="10.55.0.0/16")
    running = start_server(tmp_path / "s", network=second)
    try:
        client = client_for(running)
        try:
            assert await load_network_config(client) == second
        finally:
            await client.close()
    finally:
        running.stop()


@contextlib.asynccontextmanager
async def starting_agent(client: Client, tmp: Path, name: str) -> AsyncIterator[tuple[Agent, asyncio.Task[None]]]:
    """An agent (no --pod-cidr) whose start runs in the background: it may wait."""
    config = agent_config(tmp, name, pod_cidr="")
    agent = Agent(client, config, ProcessDriver(config.runtime_dir / "process", "127.0.0.1"), node_ip="127.0.0.1")
    task = asyncio.create_task(agent.start())
    try:
        yield agent, task
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await agent.stop()


async def ready(client: Client, name: str) -> dict[str, Any] | None:
    with contextlib.suppress(Exception):
        for c in (await client.get(NODES, name))["status"]["conditions"]:
            if c["type"] == "Ready":
                return dict(c)
    return None


async def test_agent_gets_its_block_or_says_the_range_is_exhausted(tmp_path: Path) -> None:
    network = NetworkConfig(cluster_cidr="10.68.0.0/24", node_cidr_mask_size=25)  # two blocks
    running = start_server(tmp_path / "s", network=network,
                           options=ControlPlaneOptions(controllers=["nodeipam"], scheduler=False))
    try:
        client = client_for(running)
        try:
            await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "holder"},
                                        "spec": {"podCIDR": "10.68.0.0/25", "podCIDRs": ["10.68.0.0/25"]}})
            async with starting_agent(client, tmp_path / "a", "first") as (first, task):
                await asyncio.wait_for(task, 30)
                assert first.pod_cidr == "10.68.0.128/25"
                async with starting_agent(client, tmp_path / "b", "second") as (_, waiting):
                    async def exhausted() -> dict[str, Any] | None:
                        cond = await ready(client, "second")
                        return cond if cond and "CIDRNotAvailable" in cond["message"] else None

                    cond = await eventually(exhausted, within=30, what="the node to say why it waits")
                    assert cond["status"] == "False" and "10.68.0.0/24" in cond["message"]
                    assert not waiting.done()
                    await client.delete(NODES, "holder")
                    await asyncio.wait_for(waiting, 30)
                    assert (await client.get(NODES, "second"))["spec"]["podCIDR"] == "10.68.0.0/25"
                    await eventually(lambda: _is_true(client, "second"), what="Ready after the wait")
        finally:
            await client.close()
    finally:
        running.stop()


async def _is_true(client: Client, name: str) -> bool:
    cond = await ready(client, name)
    return bool(cond and cond["status"] == "True")


@pytest.mark.parametrize("cidr", ["10.1.2.300/24", "10.1.2.3/24", "fast"])
@pytest.mark.parametrize("command", [["agent", "--server", "https://127.0.0.1:1", "--token", "t"], ["up"]])
def test_bad_pod_cidr_is_one_line(tmp_path: Path, command: list[str], cidr: str) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "bosun"), *command, "--data-dir", str(tmp_path / "d"),
                           "--pod-cidr", cidr], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and "--pod-cidr" in done.stderr, done.stderr
    assert not (tmp_path / "d").exists()
