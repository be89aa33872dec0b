"""The `kubernetes` Service gets the API server's own address as its endpoint (so that pods
reach the API through its cluster IP), and a slice changed by hand is put back."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import eventually

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


def test_server_address_needs_one_ipv4_address() -> None:
    assert server_address("https://198.18.4.1:6443") == ("198.18.4.1", 6443)
    assert server_address("https://10.0.0.1") == ("10.0.0.1", 443)
    assert server_address("https://0.0.0.0:6443") is None
    assert server_address("https://api.example.com:6443") is None


async def test_kubernetes_service_has_the_api_server_as_endpoint(plane: RunningServer) -> None:
    url = urlsplit(plane.url)
    async with Client.from_kubeconfig(plane.kubeconfig) as c:
        async def endpoint() -> tuple[str, int] | None:
            items = (await c.list(SLICES, namespace="default",
                                  label_selector="kubernetes.io/service-name=kubernetes"))["items"]
            if len(items) != 1 or not items[0].get("endpoints"):
                return None
            return items[0]["endpoints"][0]["addresses"][0], items[0]["ports"][0]["port"]

        want = (url.hostname, url.port)
        assert await eventually(endpoint, 15) == want
        await c.patch(SLICES, "kubernetes", {"endpoints": [{"addresses": ["10.1.2.3"]}]}, "default")

        async def restored() -> bool:
            return await endpoint() == want
        assert await eventually(restored, 15)
