"""The proxy component with a real API server and a real kernel (a namespace of the test's):
a Service and its EndpointSlice become rules, an endpoint change is sent as a change (not a
rebuild), a burst of changes is coalesced, and a table removed behind its back (a transaction
then fails) is rebuilt by the next sync; stop(remove=True) takes the table and the route away."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import client_in, eventually

from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.controllers._common import resource
from bosun.network.config import NetworkConfig
from bosun.network.node import NodeNetworkContext
from bosun.network.proxy.apply import Kernel
from bosun.network.proxy.component import ServiceProxy

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="needs root and nft")]

SERVICES = resource("", "v1", "services")
SLICES = resource("discovery.k8s.io", "v1", "endpointslices")


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"bpx{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        sh("ip", "-n", name, "addr", "add", "10.77.0.2/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
async def client(api_server: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(api_server, namespace, delete=True) as c:
        yield c


def slice_with(name: str, *ips: str) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


async def test_programs_changes_coalesces_and_rebuilds(client: Client, namespace: str, netns: str,
                                                      tmp_path: Path) -> None:
    ns = namespace
    await client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}, ns)
    await client.create(SLICES, slice_with("web", "10.244.1.5"), ns)
    kernel = Kernel(("nsenter", f"--net=/run/netns/{netns}"))
    ctx = NodeNetworkContext(client=client, informers=SharedInformers(client), node_name="n1",
                             node_ip="10.77.0.2", pod_cidr="10.244.1.0/24", network=NetworkConfig(),
                             state_dir=tmp_path)
    proxy = ServiceProxy(ctx, kernel=kernel)

    def table() -> str:
        out = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "ip", "bosun"],
                             capture_output=True, text=True)
        return out.stdout

    await proxy.start()
    try:
        assert "dnat to 10.244.1.5:8080" in table()
        route = sh("ip", "-n", netns, "route", "show", "10.96.0.0/16")
        assert "dev eth0" in route and "src 10.77.0.2" in route
        # Twenty changes in a burst: a handful of syncs, and the last one wins.
        syncs = proxy.syncs
        for i in range(20):
            await client.patch(SLICES, "web-1", {"endpoints": [{"addresses": [f"10.244.1.{10 + i}"],
                                                                "conditions": {"ready": True}}]}, ns)
        await eventually(lambda: asyncio.sleep(0, "dnat to 10.244.1.29:8080" in table()), 10)
        assert "10.244.1.5" not in table()
        assert proxy.syncs - syncs <= 10
        # Someone deletes the table: the next change fails to apply, and the sync after rebuilds.
        sh("ip", "netns", "exec", netns, "nft", "delete", "table", "ip", "bosun")
        await client.patch(SLICES, "web-1", {"endpoints": [{"addresses": ["10.244.1.99"],
                                                            "conditions": {"ready": True}}]}, ns)
        await eventually(lambda: asyncio.sleep(0, "dnat to 10.244.1.99:8080" in table()), 15)
    finally:
        await proxy.stop(remove=True)
        await ctx.informers.stop()
    assert table() == ""
    assert sh("ip", "-n", netns, "route", "show", "10.96.0.0/16") == ""
