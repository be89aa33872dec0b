"""The agent with the process driver against a real control plane: pods really run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import (
    agent_config,
    client_for,
    create_namespace,
    create_pod,
    is_ready,
    node_name,
    pod_when,
)

from bosun.agent.agent import Agent
from bosun.agent.runtime.process import ProcessDriver
from bosun.aio import cancel_and_wait
from bosun.controllers._common import resource

pytestmark = pytest.mark.timeout(90)


PODS, NAMESPACES, CONFIGMAPS, NODES = (resource("", "v1", p) for p in ("pods", "namespaces", "configmaps", "nodes"))
LEASES = resource("coordination.k8s.io", "v1", "leases")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from served(tmp_path_factory.mktemp("agent-server"))


class Node:
    def __init__(self, server: RunningServer, data_dir: Path, name: str) -> None:
        self.server = server
        self.client = client_for(server)
        self.config = agent_config(data_dir, name)
        self.agent: Agent | None = None

    async def start(self) -> Agent:
        driver = ProcessDriver(self.config.runtime_dir / "process", "127.0.0.1")
        self.agent = Agent(self.client, self.config, driver, node_ip="127.0.0.1")
        await self.agent.start()
        return self.agent

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
            self.agent = None


@pytest.fixture
async def node(server: RunningServer, tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(server, tmp_path / "agent", node_name(tmp_path, "n"))
    try:
        yield n
    finally:
        await n.stop()
        # Whatever happened, no process of the test outlives it.
        d = ProcessDriver(n.config.runtime_dir / "process", "127.0.0.1")
        with contextlib.suppress(FileNotFoundError):
            for c in await d.list_containers():
                await d.remove_container(c.id)
        await n.client.close()


_pod = functools.partial(create_pod, grace=2)


async def test_node_registers_with_lease(node: Node, namespace: str) -> None:
    await node.start()
    n = await node.client.get(NODES, node.config.node_name)
    assert n["metadata"]["labels"]["kubernetes.io/hostname"] == node.config.node_name
    assert int(n["status"]["capacity"]["cpu"]) >= 1 and n["status"]["capacity"]["pods"] == "110"
    conds = {c["type"]: c["status"] for c in n["status"]["conditions"]}
    assert conds["Ready"] == "True" and conds["MemoryPressure"] == "False"
    assert n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == node.agent.port  # type: ignore[union-attr]
    lease = await node.client.get(LEASES, node.config.node_name, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == node.config.node_name


async def test_pod_runs_env_configmap_logs_and_graceful_delete(node: Node, namespace: str) -> None:
    c = node.client
    await node.start()
    await create_namespace(c, namespace)
    await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                                "data": {"greeting": "hello", "file.txt": "content"}}, namespace)
    await _pod(c, namespace, node.config.node_name, "web", [{
        "name": "main", "command": ["sh", "-c", 'echo "$(GREETING) from $POD"; echo "$G2"; exec sleep 60'],
        "env": [{"name": "G2", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                {"name": "GREETING", "value": "hi"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
        "volumeMounts": [{"name": "c", "mountPath": "/etc/cfg"}]}],
        volumes=[{"name": "c", "configMap": {"name": "cfg"}}])
    pod = await pod_when(c, namespace, "web", is_ready)
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == "127.0.0.1"
    assert pod["status"]["qosClass"] == "BestEffort"
    uid = pod["metadata"]["uid"]
    cm_file = node.config.pods_dir / uid / "volumes" / "configMap" / "c" / "file.txt"
    assert cm_file.read_text() == "content"
    # Logs over the agent's HTTPS endpoint, with the cluster's token.
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    url = f"https://127.0.0.1:{node.agent.port}/containerLogs/{namespace}/web/main"  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as s:
        for _ in range(50):
            async with s.get(url, headers={"Authorization": f"Bearer {node.server.token}"}, ssl=ctx) as r:
                assert r.status == 200
                text = await r.text()
            if "hello" in text:
                break
            await asyncio.sleep(0.1)
        assert text == "hi from web\nhello\n"
        async with s.get(url, headers={"Authorization": "Bearer wrong"}, ssl=ctx) as r:
            assert r.status == 401
    # Graceful deletion: SIGTERM ends sleep, then the agent deletes the pod object.
    await c.delete(PODS, "web", namespace)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        items = (await c.list(PODS, namespace))["items"]
        if not items:
            break
        await asyncio.sleep(0.1)
    assert not items
    assert not await node.agent.driver.list_containers(uid)  # type: ignore[union-attr]


async def test_first_readiness_probe_joins_the_running_status(node: Node, namespace: str) -> None:
    """A pod whose readiness probe passes at once goes from Pending straight to Running and
    Ready (one status write, as kubelet's status manager coalesces them); one whose probe
    fails is still reported Running, not Ready, within a second."""
    c = node.client
    await node.start()
    await create_namespace(c, namespace)
    seen: list[tuple[str, bool]] = []

    async def watch() -> None:
        async for ev in c.watch(PODS, namespace, timeout_seconds=20):
            pod = ev.get("object") or {}
            if pod.get("metadata", {}).get("name") == "quick":
                seen.append((pod.get("status", {}).get("phase", ""), is_ready(pod)))

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.sleep(0.2)
        probe = {"exec": {"command": ["true"]}, "periodSeconds": 1}
        await _pod(c, namespace, node.config.node_name, "quick",
                   [{"name": "main", "command": ["sleep", "60"], "readinessProbe": probe}])
        began = time.monotonic()
        failing = {"exec": {"command": ["false"]}, "periodSeconds": 1}
        await _pod(c, namespace, node.config.node_name, "failing",
                   [{"name": "main", "command": ["sleep", "60"], "readinessProbe": failing}])
        pod = await pod_when(c, namespace, "failing", lambda p: p.get("status", {}).get("phase") == "Running")
        assert not is_ready(pod) and time.monotonic() - began < 3
        await pod_when(c, namespace, "quick", is_ready)
        await asyncio.sleep(0.3)
    finally:
        await cancel_and_wait(watcher)
    assert ("Running", False) not in seen and ("Running", True) in seen, seen


async def test_restart_backoff_and_exit_codes(node: Node, namespace: str) -> None:
    c = node.client
    await node.start()
    await create_namespace(c, namespace)
    await _pod(c, namespace, node.config.node_name, "crash", [{"name": "c", "command": ["sh", "-c", "exit 3"]}])
    pod = await pod_when(c, namespace, "crash", lambda p: any(
        s.get("restartCount", 0) >= 2 for s in p.get("status", {}).get("containerStatuses", [])))
    st = pod["status"]["containerStatuses"][0]
    assert st["lastState"]["terminated"]["exitCode"] == 3
    assert st["lastState"]["terminated"]["reason"] == "Error"
    await pod_when(c, namespace, "crash", lambda p: p["status"]["containerStatuses"][0]["state"]
                 .get("waiting", {}).get("reason") == "CrashLoopBackOff")
    await _pod(c, namespace, node.config.node_name, "once", [{"name": "c", "command": ["sh", "-c", "exit 0"]}],
               restartPolicy="Never")
    pod = await pod_when(c, namespace, "once", lambda p: p["status"].get("phase") == "Succeeded")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    await _pod(c, namespace, node.config.node_name, "fails", [{"name": "c", "command": ["sh", "-c", "exit 7"]}],
               restartPolicy="Never")
    pod = await pod_when(c, namespace, "fails", lambda p: p["status"].get("phase") == "Failed")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 7


async def test_liveness_failure_restarts(node: Node, namespace: str) -> None:
    c = node.client
    await node.start()
    await create_namespace(c, namespace)
    await _pod(c, namespace, node.config.node_name, "live", [{
        "name": "c", "command": ["sleep", "60"],
        "livenessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 1, "failureThreshold": 1}}])
    pod = await pod_when(c, namespace, "live", lambda p: any(
        s.get("restartCount", 0) >= 1 for s in p.get("status", {}).get("containerStatuses", [])))
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM


async def test_agent_restart_readopts(node: Node, namespace: str) -> None:
    c = node.client
    await node.start()
    await create_namespace(c, namespace)
    await _pod(c, namespace, node.config.node_name, "keep", [{"name": "c", "command": ["sleep", "60"]}])
    pod = await pod_when(c, namespace, "keep", is_ready)
    uid = pod["metadata"]["uid"]
    before = pod["status"]["containerStatuses"][0]["containerID"]
    await node.stop()
    agent = await node.start()
    await asyncio.sleep(1.0)
    pod = await pod_when(c, namespace, "keep", is_ready)
    assert pod["status"]["containerStatuses"][0]["containerID"] == before
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert len(await agent.driver.list_containers(uid)) == 1
