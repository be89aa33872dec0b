"""ServiceLB gives a LoadBalancer Service the Ready nodes' addresses, follows nodes coming and
going, and takes them back when the Service stops being a load balancer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import client_in, eventually

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.controllers._common import resource
from bosun.controlplane import ControlPlaneOptions

SERVICES = resource("", "v1", "services")
NODES = resource("", "v1", "nodes")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["servicelb"], scheduler=False, lease_duration=4.0)
    yield from served(tmp_path_factory.mktemp("servicelb"), options=options)


@pytest.fixture
async def client(plane: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(plane, namespace, delete=True) as c:
        yield c


async def make_node(c: Client, name: str, ip: str, ready: bool = True) -> None:
    await c.create(NODES, {"metadata": {"name": name}})
    await c.patch(NODES, name, {"status": {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}, subresource="status")


async def ingress(c: Client, ns: str) -> list[str]:
    svc = await c.get(SERVICES, "lb", ns)
    return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


async def test_load_balancer_gets_the_ready_nodes_addresses(client: Client, namespace: str) -> None:
    c, ns, tag = client, namespace, namespace[-6:]
    names = [f"lb-{tag}-a", f"lb-{tag}-b", f"lb-{tag}-c"]
    try:
        await make_node(c, names[0], "10.123.0.12")
        await make_node(c, names[1], "10.123.0.3")
        await make_node(c, names[2], "10.123.0.4", ready=False)
        body: dict[str, Any] = {"metadata": {"name": "lb"}, "spec": {
            "type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}}
        await c.create(SERVICES, body, ns)

        async def addresses(want: list[str]) -> bool:
            got = [ip for ip in await ingress(c, ns) if ip.startswith("10.123.")]
            return got == want
        await eventually(lambda: addresses(["10.123.0.3", "10.123.0.12"]), 15, "the Ready nodes' addresses")
        await c.delete(NODES, names[1])
        await eventually(lambda: addresses(["10.123.0.12"]), 15, "a deleted node's address removed")
        await c.patch(SERVICES, "lb", {"spec": {"type": "ClusterIP", "externalTrafficPolicy": None,
                                                "ports": [{"port": 80, "nodePort": None}]}}, ns)
        await eventually(lambda: addresses([]), 15, "addresses taken back from a ClusterIP Service")
        # A Service of another load-balancer class is not ours.
        other: dict[str, Any] = {"metadata": {"name": "other"}, "spec": {
            "type": "LoadBalancer", "loadBalancerClass": "example.com/lb", "selector": {"app": "x"},
            "ports": [{"port": 80}]}}
        await c.create(SERVICES, other, ns)
        await make_node(c, names[1], "10.123.0.3")
        await eventually(lambda: c.get(SERVICES, "other", ns), 5)
        assert not ((await c.get(SERVICES, "other", ns)).get("status") or {}).get("loadBalancer", {}).get("ingress")
    finally:
        for n in names:
            with contextlib.suppress(ApiError):  # already gone
                await c.delete(NODES, n)
