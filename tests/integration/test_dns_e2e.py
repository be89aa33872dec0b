"""Cluster DNS end to end on one node: a control plane and a `bosun agent` process inside a
network namespace of the test's own, real containers whose glibc and busybox resolvers
read the resolv.conf the agent wrote, and an upstream DNS server in a second namespace.

    node ns: API server (lo), bosun agent, pod bridge + DNS 10.244.5.1  --veth--  upstream ns 10.53.1.2
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, start_server
from tests.integration.dns_env import Upstream, entered, link, namespaces
from tests.integration.helpers import client_for, create_namespace, eventually, is_ready, pod_when

from bosun.client.rest import Client
from bosun.controllers._common import resource
from bosun.controlplane import ControlPlaneOptions

NEEDS = [shutil.which("crun") or shutil.which("runc"), shutil.which("nsenter"), shutil.which("ip"),
         os.path.exists("/usr/lib/cni/bridge")]
pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(os.geteuid() != 0 or not all(NEEDS), reason="needs root, crun, iproute2, CNI")]

PODS, SERVICES = resource("", "v1", "pods"), resource("", "v1", "services")
STATEFULSETS = resource("apps", "v1", "statefulsets")
NODE = "dns-e2e"
POD_CIDR = "10.244.5.0/24"
UPSTREAM = "10.53.1.2"


@dataclass
class Cluster:
    client: Client
    server: RunningServer
    ns: str
    out: Path


def _agent(server: RunningServer, netns: str, data_dir: Path) -> subprocess.Popen[bytes]:
    bosun = Path(sys.executable).parent / "bosun"
    cmd = ["nsenter", f"--net=/run/netns/{netns}", str(bosun), "agent", "--server", server.url,
           "--token", server.token, "--ca-file", server.ca_path, "--name", NODE, "--data-dir", str(data_dir),
           "--node-ip", "10.53.1.1", "--port", "0", "--pod-cidr", POD_CIDR, "--upstream-dns", UPSTREAM,
           "--log-level", "info"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(data_dir.parent / "agent.log", "wb"))


async def _ready_node(client: Client, within: float = 60) -> None:
    async def ready() -> bool:
        with contextlib.suppress(Exception):
            return is_ready(await client.get(resource("", "v1", "nodes"), NODE))
        return False

    await eventually(ready, within, "the agent to be a Ready node", step=0.2)


async def _no_pods(client: Client, ns: str, within: float = 40) -> None:
    for p in (await client.list(PODS, ns))["items"]:
        with contextlib.suppress(Exception):
            await client.delete(PODS, p["metadata"]["name"], namespace=ns)
    async def gone() -> bool:
        return not (await client.list(PODS, ns))["items"]

    await eventually(gone, within, "the pods to be deleted", step=0.2)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    (tmp_path / "agent").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    with namespaces("node", "up") as ns:
        link(ns["node"], "10.53.1.1/24", ns["up"], f"{UPSTREAM}/24")
        upstream = Upstream(ns["up"], UPSTREAM, {"example.test": "192.0.2.7"})
        try:
            with entered(ns["node"]):
                server = start_server(tmp_path / "server", options=ControlPlaneOptions(lease_duration=4.0))
                client = client_for(server)
                agent = _agent(server, ns["node"].name, tmp_path / "agent")
                name = "shop"
                try:
                    await _ready_node(client)
                    await create_namespace(client, name)
                    yield Cluster(client, server, name, out)
                finally:
                    with contextlib.suppress(Exception):
                        await client.delete(STATEFULSETS, "db", namespace=name)
                    with contextlib.suppress(Exception):
                        await _no_pods(client, name)
                    agent.send_signal(signal.SIGTERM)
                    try:
                        agent.wait(20)
                    except subprocess.TimeoutExpired:
                        agent.kill()
                        agent.wait()
                    await client.close()
                    server.stop()
        finally:
            upstream.stop()


def _statefulset() -> dict[str, Any]:
    labels = {"app": "db"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      {"name": "db", "image": "host", "command": ["sleep", "3600"]}]}}}}


PROBE = """
getent hosts web > /out/short
getent hosts web.shop.svc.cluster.local > /out/fqdn
getent hosts web.shop > /out/dotted
getent hosts db-0.db > /out/sts
getent hosts example.test > /out/upstream
busybox nslookup nope.shop.svc.cluster.local > /out/nx 2>&1; echo $? > /out/nx.rc
cat /etc/resolv.conf > /out/resolv
"""


async def test_a_pod_resolves_services_statefulset_pods_and_outside_names(cluster: Cluster) -> None:
    c, ns = cluster.client, cluster.ns
    web = await c.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}, ns)
    await c.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                              "spec": {"clusterIP": "None", "selector": {"app": "db"},
                                       "ports": [{"name": "pg", "port": 5432}]}}, ns)
    await c.create(STATEFULSETS, _statefulset(), ns)
    db0 = await pod_when(c, ns, "db-0", is_ready, within=60, tolerate_errors=True)
    await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": {
        "nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "probe", "image": "host", "command": ["sh", "-c", PROBE],
                        "volumeMounts": [{"name": "out", "mountPath": "/out"}]}],
        "volumes": [{"name": "out", "hostPath": {"path": str(cluster.out)}}]}}, ns)
    await pod_when(c, ns, "probe", lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"), within=60)

    def read(name: str) -> str:
        return (cluster.out / name).read_text()

    resolv = read("resolv")
    assert "nameserver 10.244.5.1" in resolv
    assert "search shop.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    ip = web["spec"]["clusterIP"]
    assert read("short").split()[:2] == [ip, "web.shop.svc.cluster.local"]
    assert read("fqdn").split()[:2] == [ip, "web.shop.svc.cluster.local"]
    assert read("dotted").split()[0] == ip
    assert read("sts").split()[:2] == [db0["status"]["podIP"], "db-0.db.shop.svc.cluster.local"]
    assert read("upstream").split()[0] == "192.0.2.7"
    assert "NXDOMAIN" in read("nx") and read("nx.rc").strip() != "0"
