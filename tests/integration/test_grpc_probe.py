"""gRPC probes: the health checking protocol against real servers, and a pod whose gRPC
readiness probe makes it Ready once its server (in the container) says SERVING."""

from __future__ import annotations

import site
import socket
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tests.conftest import RunningServer
from tests.integration.helpers import create_namespace, create_pod, is_ready, pod_when
from tests.integration.oci_env import requires_oci
from tests.integration.oci_node import oci_node

from bosun.agent.probes import run_probe
from bosun.agent.runtime.process import ProcessDriver
from bosun.client.rest import Client

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def servers() -> Iterator[tuple[int, int, health.HealthServicer]]:
    """(port of a server with the health service, port of one without it, its servicer)."""
    checked = grpc.server(futures.ThreadPoolExecutor(2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, checked)
    port = checked.add_insecure_port("127.0.0.1:0")
    bare = grpc.server(futures.ThreadPoolExecutor(1))
    bare_port = bare.add_insecure_port("127.0.0.1:0")
    checked.start()
    bare.start()
    try:
        yield port, bare_port, servicer
    finally:
        checked.stop(0)
        bare.stop(0)


async def _probe(port: int, service: str = "") -> tuple[bool, str]:
    probe = {"grpc": {"port": port, "service": service}, "timeoutSeconds": 2}
    result = await run_probe(probe, {"name": "c"}, "127.0.0.1", ProcessDriver(Path("/nonexistent"), "127.0.0.1"), "")
    return result.ok, result.message


async def test_grpc_probe_outcomes_and_messages(servers: tuple[int, int, health.HealthServicer]) -> None:
    port, bare_port, servicer = servers
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("db", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert await _probe(port) == (True, "")
    assert await _probe(port, "db") == (False, 'service unhealthy (responded with "NOT_SERVING")')
    ok, message = await _probe(port, "nope")
    assert not ok and message.startswith("error: health rpc probe failed: NOT_FOUND"), message
    ok, message = await _probe(bare_port)
    assert not ok and message.startswith("this server does not implement the grpc health protocol"), message
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    ok, message = await _probe(free)
    assert not ok and message.startswith(f'timeout: failed to connect service "127.0.0.1:{free}"'), message


SERVER = """
import concurrent.futures, grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
servicer = health.HealthServicer()
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
server.add_insecure_port("0.0.0.0:50051")
server.start()
servicer.set("shop", health_pb2.HealthCheckResponse.SERVING)
print("serving", flush=True)
server.wait_for_termination()
"""


@pytest.fixture
async def node(api_server: RunningServer, tmp_path: Path) -> AsyncIterator[tuple[Client, str]]:
    async with oci_node(api_server, tmp_path, "grpc") as node:
        yield node


@requires_oci
async def test_pod_with_a_grpc_readiness_probe_becomes_ready(node: tuple[Client, str], namespace: str) -> None:
    """The server runs in the container with the node's python3 (the `host` image) and this
    environment's grpcio, mounted read-only from the host: the test images have no Python."""
    client, name = node
    await create_namespace(client, namespace)
    packages = str(Path(grpc.__file__).parent.parent)
    assert packages in site.getsitepackages()
    await create_pod(client, namespace, name, "rpc", [{
        "name": "rpc", "command": ["python3", "-c", SERVER], "env": [{"name": "PYTHONPATH", "value": "/site"}],
        "volumeMounts": [{"name": "site", "mountPath": "/site", "readOnly": True}],
        "readinessProbe": {"grpc": {"port": 50051, "service": "shop"}, "periodSeconds": 1, "timeoutSeconds": 2}}],
        volumes=[{"name": "site", "hostPath": {"path": packages}}])
    pod = await pod_when(client, namespace, "rpc", is_ready, within=40)
    assert pod["status"]["containerStatuses"][0]["ready"] is True
