"""The agent with the docker driver against a real control plane and a private Docker Engine:
the pod behaviours of the oci driver's tests (start, IP on the node bridge, readiness probe,
logs, exec, limits, restart on failure, adoption after an agent restart, cleanup)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import docker
import pytest
from tests.conftest import RunningServer
from tests.e2e.netns_node import netns_node
from tests.integration import docker_node
from tests.integration.docker_env import BUSYBOX_IMAGE, requires_docker
from tests.integration.docker_node import Node, container, ours
from tests.integration.helpers import client_for, create_namespace, node_name, pod_when

from bosun.agent.config import AgentConfig
from bosun.agent.netns_dial import socket_in
from bosun.agent.runtime.docker_engine import LABEL_ROOT
from bosun.cli.node_cleanup import cleanup_node
from bosun.controllers._common import resource

pytestmark = [requires_docker, pytest.mark.timeout(120)]
PODS, NODES = resource("", "v1", "pods"), resource("", "v1", "nodes")
BOSUN = str(Path(sys.executable).parent / "bosun")
engine, server, node = docker_node.engine, docker_node.server, docker_node.node  # this module's fixtures


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return resp.read().decode()


async def test_pod_serves_logs_execs_and_restarts_on_docker(node: Node, namespace: str) -> None:
    await node.start()
    c = node.client
    await create_namespace(c, namespace)
    web = {"name": "web", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
           "command": ["sh", "-c", "echo started; mkdir -p /www; echo hello from docker > /www/index.html; "
                       "exec httpd -f -p 8080 -h /www"],
           "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
           "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}
    crash = {"name": "crash", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
             "command": ["sh", "-c", "echo attempt; exit 3"]}
    reader = {"name": "reader", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "stdin": True,
              "command": ["sh", "-c", "while read l; do echo got-$l; done; echo stdin-closed"]}
    await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": namespace},
                          "spec": {"nodeName": node.config.node_name, "terminationGracePeriodSeconds": 1,
                                   "containers": [web, crash, reader]}}, namespace)

    def settled(p: dict[str, Any]) -> bool:
        cs = {s["name"]: s for s in p.get("status", {}).get("containerStatuses") or []}
        return bool(cs.get("web", {}).get("ready")) and cs.get("crash", {}).get("restartCount", 0) >= 1
    pod = await pod_when(c, namespace, "web", settled, within=60)
    ip = pod["status"]["podIP"]
    assert ip.startswith(node.subnet.rsplit(".", 1)[0]), ip  # Bosun's bridge, not Docker's network
    assert await asyncio.to_thread(_get, f"http://{ip}:8080/index.html") == "hello from docker\n"
    last = container(pod, "crash")["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"

    logs = await asyncio.to_thread(node.kubectl, "logs", "-n", namespace, "web", "-c", "web")
    assert logs.returncode == 0 and logs.stdout == "started\n", logs.stderr
    out = await asyncio.to_thread(node.kubectl, "exec", "-n", namespace, "web", "-c", "web", "--", "sh", "-c",
                                  "hostname; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                                  "echo oops >&2; exit 4")
    assert out.returncode == 4 and out.stdout.split() == ["web", str(64 << 20)] and "oops" in out.stderr, out
    typed = await asyncio.to_thread(lambda: subprocess.run(
        ["kubectl", "--kubeconfig", node.server.kubeconfig, "exec", "-i", "-n", namespace, "web", "-c", "web",
         "--", "cat"], input="typed in\n", capture_output=True, text=True, timeout=30))
    assert typed.returncode == 0 and typed.stdout == "typed in\n", typed

    attached = await asyncio.to_thread(lambda: subprocess.run(
        ["kubectl", "--kubeconfig", node.server.kubeconfig, "attach", "-i", "-n", namespace, "web", "-c", "reader"],
        input="one\ntwo\n", capture_output=True, text=True, timeout=30))
    assert attached.returncode == 0 and attached.stdout.splitlines()[-3:] == ["got-one", "got-two", "stdin-closed"], \
        attached

    assert node.agent is not None
    cid = container(pod, "web")["containerID"].split("://")[-1]
    stats = await node.agent.driver.stats(cid)
    assert stats is not None and stats.memory_working_set_bytes > 0 and stats.cpu_usage_ns > 0

    await c.delete(PODS, "web", namespace)
    for _ in range(200):
        if not (await c.list(PODS, namespace))["items"]:
            break
        await asyncio.sleep(0.1)
    assert not (await c.list(PODS, namespace))["items"]
    assert not await node.agent.driver.list_containers() and not await node.agent.driver.list_sandboxes()


async def test_pods_are_adopted_after_an_agent_restart_then_cleaned_up(node: Node, namespace: str,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    await node.start()
    c = node.client
    await create_namespace(c, namespace)
    await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tick", "namespace": namespace},
                          "spec": {"nodeName": node.config.node_name, "terminationGracePeriodSeconds": 1,
                                   "shareProcessNamespace": True, "containers": [{
                                       "name": "tick", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                                       "command": ["sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); "
                                                   "sleep 0.1; done"]}, {
                                       "name": "side", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                                       "command": ["sleep", "3601"]}]}}, namespace)
    pod = await pod_when(c, namespace, "tick", lambda p: p.get("status", {}).get("phase") == "Running", within=60)
    before = container(pod, "tick")["containerID"]
    # shareProcessNamespace: tick sees side's process, and the pause process as PID 1.
    ps = await asyncio.to_thread(node.kubectl, "exec", "-n", namespace, "tick", "-c", "tick", "--", "sh", "-c",
                                 "cat /proc/1/cmdline; echo; cat /proc/[0-9]*/cmdline")
    assert ps.stdout.startswith("/bin/sleep\x002147483647") and "sleep\x003601" in ps.stdout, ps
    await node.stop()  # not a drain: the container goes on without an agent
    await node.start()

    pod = await pod_when(c, namespace, "tick", lambda p: p.get("status", {}).get("phase") == "Running", within=30)
    assert container(pod, "tick")["containerID"] == before and container(pod, "tick")["restartCount"] == 0
    lines: list[str] = []
    for _ in range(100):
        logs = await asyncio.to_thread(node.kubectl, "logs", "-n", namespace, "tick")
        lines = logs.stdout.split()
        if len(lines) > 40:
            break
        await asyncio.sleep(0.1)
    # Every line once and in order, across the restart: the copy went on where it stopped.
    assert lines[:41] == [f"line{i}" for i in range(41)], lines[:50]

    await node.stop()
    # What `bosun agent --cleanup` runs, with this node's own bridge and CNI network names.
    await asyncio.to_thread(cleanup_node, AgentConfig(node_name=node.config.node_name, data_dir=node.config.data_dir),
                            "127.0.0.1", bridge=node.bridge, network_name=node.network, ipam_dir=str(node.ipam))
    assert "removed 2 container(s), 1 pod sandbox(es), 1 pod dir(s)" in capsys.readouterr().out
    assert not ours(node.engine, node.config.runtime_dir / "docker")


async def test_docker_runtime_with_no_engine_is_one_line_and_registers_nothing(server: RunningServer,
                                                                               tmp_path: Path) -> None:
    client = client_for(server)
    name = node_name(tmp_path, "nodocker", keep=10)
    result = await asyncio.to_thread(lambda: subprocess.run(
        [BOSUN, "agent", "--runtime", "docker", "--kubeconfig",
         server.kubeconfig, "--name", name, "--data-dir", str(tmp_path / "agent")],
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}, capture_output=True,
        text=True, timeout=60))
    try:
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "no Docker Engine answers at unix://" in lines[0], result.stderr
        assert name not in [n["metadata"]["name"] for n in (await client.list(NODES))["items"]]
    finally:
        await client.close()


def test_a_service_reaches_a_docker_pod_on_a_bosun_up_node(engine: str, tmp_path: Path) -> None:
    """`bosun up --runtime docker` in a network namespace of its own (its bridge and service
    rules go with it): a Service's ClusterIP answers from the pod behind it."""
    with netns_node(tmp_path, runtime="docker", env={**os.environ, "DOCKER_HOST": engine}) as n:
        n.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default",
                                                                 "labels": {"app": "web"}},
                 "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                     "name": "web", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                     "command": ["sh", "-c", "mkdir -p /www; echo served by docker > /www/index.html; "
                                 "exec httpd -f -p 8080 -h /www"],
                     "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}})
        n.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                 "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        n.wait_running("web")
        ip = n.ok("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
        got, deadline = b"", time.monotonic() + 60
        pod_ip = n.ok("get", "pod", "web", "-o", "jsonpath={.status.podIP}")
        direct = _http_get_in(n.ns, pod_ip, 8080, "/index.html")
        assert direct.endswith(b"\r\n\r\nserved by docker\n"), direct  # the pod's IP, over the bridge
        # A node has a default route; this namespace only its bridge's: ClusterIPs need one.
        subprocess.run(["ip", "-n", n.ns, "route", "add", "default", "dev", "bosun0"], check=True)
        while b"served by docker" not in got and time.monotonic() < deadline:
            got = _http_get_in(n.ns, ip, 80, "/index.html")
            if b"served by docker" not in got:
                time.sleep(0.3)
        assert got.endswith(b"\r\n\r\nserved by docker\n"), got
        n.ok("delete", "pod", "web", "--wait=true")
    assert not _ours_anywhere(engine), "bosun up left containers in the engine"


def _http_get_in(ns: str, host: str, port: int, path: str) -> bytes:
    """A plain HTTP/1.0 GET from inside network namespace ``ns`` (the error's text when it fails)."""
    try:
        with socket_in(f"/run/netns/{ns}") as sock:
            sock.settimeout(3)
            sock.connect((host, port))
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
    except OSError as e:
        return f"{type(e).__name__}: {e}".encode()


def _ours_anywhere(engine: str) -> list[str]:
    client = docker.APIClient(base_url=engine, version="auto")
    try:
        return [c["Names"][0] for c in client.containers(all=True, filters={"label": LABEL_ROOT})]
    finally:
        client.close()
