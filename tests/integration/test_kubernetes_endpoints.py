"""The `kubernetes` Service's endpoint is the API server's own address, unless that is one pods
cannot reach. (With a reachable address, the slice and the traffic through it are checked end
to end on the harness: tests/e2e/test_service_proxy.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.conftest import RunningServer, served

from bosun.client.rest import Client
from bosun.controllers._common import resource
from bosun.controllers.kubernetes_endpoints import server_address
from bosun.controlplane import ControlPlaneOptions

SLICES = resource("discovery.k8s.io", "v1", "endpointslices")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["kubernetes_endpoints"], scheduler=False, lease_duration=4.0)
    yield from served(tmp_path_factory.mktemp("kube-endpoints"), options=options)


def test_server_address_needs_one_reachable_ipv4_address() -> None:
    assert server_address("https://198.18.4.1:6443") == ("198.18.4.1", 6443)
    assert server_address("https://10.0.0.1") == ("10.0.0.1", 443)
    assert server_address("https://0.0.0.0:6443") is None
    assert server_address("https://127.0.0.1:6443") is None
    assert server_address("https://api.example.com:6443") is None


async def test_a_loopback_server_publishes_no_endpoint(plane: RunningServer) -> None:
    assert plane.url.startswith("https://127.0.0.1:")
    async with Client.from_kubeconfig(plane.kubeconfig) as c:
        await asyncio.sleep(2)  # the controller has long started (leader at once, alone)
        items = (await c.list(SLICES, namespace="default",
                              label_selector="kubernetes.io/service-name=kubernetes"))["items"]
        assert items == []
