"""The gRPC probe: the standard health checking protocol (``grpc.health.v1.Health/Check``)
against the pod's address, with kubelet's messages for each way it can fail.

As in Kubernetes, the connection is plain (no TLS), the port is a number (gRPC probes have
no named ports) and ``service`` is passed as is ("" asks about the server as a whole); only
``SERVING`` passes.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

USER_AGENT = "kube-probe/1.32"


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def check(host: str, port: int, service: str, timeout: float) -> tuple[bool, str]:  # noqa: ASYNC109
    """(passed, message); never raises for what the server or network does."""
    target = _target(host, port)
    options = [("grpc.primary_user_agent", USER_AGENT), ("grpc.enable_retries", 0)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            code = e.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return False, ("this server does not implement the grpc health protocol "
                               f"(grpc.health.v1.Health): {e.details()}")
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, f"timeout: health rpc did not complete within {timeout:g}s"
            if code == grpc.StatusCode.UNAVAILABLE:
                return False, f'timeout: failed to connect service "{target}" within {timeout:g}s: {e.details()}'
            return False, f"error: health rpc probe failed: {code.name}: {e.details()}"
    if resp.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        return False, f'service unhealthy (responded with "{name}")'
    return True, ""
