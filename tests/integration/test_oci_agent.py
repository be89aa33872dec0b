"""The agent with the oci driver against a real control plane: real containers in pod networks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import agent_config, client_for, is_ready, node_name, pod_when
from tests.integration.oci_env import OciEnv, oci_env, requires_oci

from bosun.agent.agent import Agent
from bosun.client.rest import Client
from bosun.controllers._common import resource

pytestmark = [requires_oci, pytest.mark.timeout(90)]


PODS, NAMESPACES, CONFIGMAPS = (resource("", "v1", p) for p in ("pods", "namespaces", "configmaps"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from served(tmp_path_factory.mktemp("oci-agent-server"))


class Node:
    def __init__(self, client: Client, env: OciEnv, agent: Agent) -> None:
        self.client, self.env, self.agent = client, env, agent
        self.name = agent.config.node_name


@pytest.fixture
async def node(server: RunningServer, tmp_path: Path) -> AsyncIterator[Node]:
    client = client_for(server)
    try:
        async with oci_env() as env:
            config = agent_config(tmp_path / "agent", node_name(tmp_path, "oci", keep=10), pod_cidr=env.subnet)
            agent = Agent(client, config, env.driver, node_ip="127.0.0.1")
            await agent.start()
            try:
                yield Node(client, env, agent)
            finally:
                await agent.stop()
    finally:
        await client.close()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read().decode()


async def _gone(client: Client, ns: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while (await client.list(PODS, ns))["items"]:
        assert time.monotonic() < deadline, "pods were not deleted"
        await asyncio.sleep(0.1)


async def test_pod_serves_on_its_ip_with_probe_and_volume(node: Node, namespace: str) -> None:
    c = node.client
    await c.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "site"},
                                "data": {"index.html": "hello from a container\n"}}, namespace)
    await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": namespace},
                          "spec": {"nodeName": node.name, "terminationGracePeriodSeconds": 2, "containers": [{
                              "name": "web", "image": "host",
                              "command": ["python3", "-m", "http.server", "8080", "--directory", "/site"],
                              "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                              "resources": {"limits": {"memory": "128Mi", "cpu": "500m"}},
                              "volumeMounts": [{"name": "site", "mountPath": "/site"}]}],
                              "volumes": [{"name": "site", "configMap": {"name": "site"}}]}}, namespace)
    pod = await pod_when(c, namespace, "web", is_ready, within=30)
    ip = pod["status"]["podIP"]
    assert ip.startswith(node.env.subnet.rsplit(".", 1)[0]) and pod["status"]["hostIP"] == "127.0.0.1"
    assert _get(f"http://{ip}:8080/index.html") == "hello from a container\n"
    await c.delete(PODS, "web", namespace)
    await _gone(c, namespace)


async def test_memory_hog_is_reported_oom_killed(node: Node, namespace: str) -> None:
    c = node.client
    await c.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog", "namespace": namespace},
                          "spec": {"nodeName": node.name, "restartPolicy": "Never", "containers": [{
                              "name": "hog", "image": "host",
                              "command": ["python3", "-c", "a = []\nwhile True: a.append(bytearray(1 << 20))"],
                              "resources": {"limits": {"memory": "40Mi"}}}]}}, namespace)
    pod = await pod_when(c, namespace, "hog", lambda p: p.get("status", {}).get("phase") == "Failed", within=30)
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137
    await c.delete(PODS, "hog", namespace)
    await _gone(c, namespace)


async def test_share_process_namespace_lets_containers_see_each_other(node: Node, namespace: str) -> None:
    c = node.client
    await c.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    def pod(name: str, share: bool) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                "spec": {"nodeName": node.name, "terminationGracePeriodSeconds": 1, "shareProcessNamespace": share,
                         "containers": [{"name": "a", "image": "host", "command": ["sleep", "3601"]},
                                        {"name": "b", "image": "host", "command": ["sleep", "3602"]}]}}

    async def seen_from_b(name: str) -> str:
        p = await pod_when(c, namespace, name, is_ready, within=30)
        b = next(s for s in p["status"]["containerStatuses"] if s["name"] == "b")
        every = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"
        proc = await node.agent.driver.exec(b["containerID"].split("://")[1], ["sh", "-c", every])
        out = (await proc.stdout.read()).decode()
        assert await proc.wait() == 0
        return out

    await c.create(PODS, pod("shared", True), namespace)
    await c.create(PODS, pod("apart", False), namespace)
    shared, apart = await seen_from_b("shared"), await seen_from_b("apart")
    assert "sleep 3601" in shared and "sleep infinity" in shared, shared  # a's process, and the pod's PID 1
    assert "sleep 3601" not in apart and "sleep 3602" in apart, apart
    uid = (await c.get(PODS, "shared", namespace))["metadata"]["uid"]
    record = node.env.root / "oci" / "sandboxes" / uid / "sandbox.json"
    holder = json.loads(await asyncio.to_thread(record.read_text))["pid_holder"]
    await c.delete(PODS, "shared", namespace)
    await c.delete(PODS, "apart", namespace)
    await _gone(c, namespace)

    def holder_alive() -> bool:  # a killed process not reaped yet (a zombie) counts as gone
        for k in ("init", "pid"):
            with contextlib.suppress(OSError, IndexError):
                if Path(f"/proc/{holder[k]}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    return True
        return False

    # The pod object may go before the agent has torn its sandbox down: wait for that too.
    deadline = time.monotonic() + 15
    while await asyncio.to_thread(holder_alive):
        assert time.monotonic() < deadline, f"the pod's PID namespace holder {holder} outlived it"
        await asyncio.sleep(0.2)
