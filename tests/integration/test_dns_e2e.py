"""Cluster DNS end to end on one node: a control plane and a `bosun agent` process inside a
network namespace of the test's own (the control plane runs in this process, on that
namespace's loopback: the test's thread enters the namespace before starting it), real
containers whose glibc and busybox resolvers read the resolv.conf the agent wrote, and an
upstream DNS server in a second namespace.

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
from tests.harness import cgroups
from tests.harness.sweep import mounts_under
from tests.integration.dns_env import Upstream, entered, link, namespaces
from tests.integration.helpers import client_for, create_namespace, eventually, is_ready, pod_when

from bosun.client.rest import Client
from bosun.controllers._common import resource
from bosun.controlplane import ControlPlaneOptions

NEEDS = [shutil.which("crun") or shutil.which("runc"), shutil.which("ip"),
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


def _agent(server: RunningServer, netns: str, data_dir: Path, cgroup: str) -> subprocess.Popen[bytes]:
    """``bosun agent`` under ``ip netns exec``, itself and its pods below cgroup ``cgroup``."""
    bosun = Path(sys.executable).parent / "bosun"
    cmd = ["ip", "netns", "exec", netns, str(bosun), "agent", "--server", server.url,
           "--token", server.token, "--ca-file", server.ca_path, "--name", NODE, "--data-dir", str(data_dir),
           "--node-ip", "10.53.1.1", "--port", "0", "--pod-cidr", POD_CIDR, "--upstream-dns", UPSTREAM,
           "--cgroup-parent", f"{cgroup}/pods", "--ipam-dir", str(data_dir / "ipam"), "--log-level", "info"]
    with open(data_dir.parent / "agent.log", "wb") as log:
        return subprocess.Popen(cgroups.wrap(f"{cgroup}/agent", cmd), stdout=subprocess.DEVNULL, stderr=log)


async def _ready_node(client: Client, within: float = 60) -> None:
    async def ready() -> bool:
        with contextlib.suppress(Exception):
            return is_ready(await client.get(resource("", "v1", "nodes"), NODE))
        return False

    await eventually(ready, within, "the agent to be a Ready node", step=0.2)


async def _no_pods(client: Client, ns: str, within: float = 40) -> None:
    """Delete the StatefulSet (so that nothing makes pods again), then every pod, and wait."""
    with contextlib.suppress(Exception):
        await client.delete(STATEFULSETS, "db", namespace=ns)
    await eventually(lambda: _gone(client, ns), within, "the StatefulSet to be deleted", step=0.2)
    for p in (await client.list(PODS, ns))["items"]:
        with contextlib.suppress(Exception):
            await client.delete(PODS, p["metadata"]["name"], namespace=ns)
    async def gone() -> bool:
        return not (await client.list(PODS, ns))["items"]

    await eventually(gone, within, "the pods to be deleted", step=0.2)


def _stop(agent: subprocess.Popen[bytes], cgroup: str, tmp_path: Path) -> None:
    """The agent stopped, then whatever it left: processes in its cgroup, mounts in its dirs."""
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(20)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
    cgroups.destroy(cgroup)
    for point in sorted(mounts_under(tmp_path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


async def _gone(client: Client, ns: str) -> bool:
    return not (await client.list(STATEFULSETS, ns))["items"]


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
                cgroup = ns["node"].name  # bdns<tag>-node: the agent, its shims and every container
                agent = _agent(server, ns["node"].name, tmp_path / "agent", cgroup)
                name = "shop"
                try:
                    await _ready_node(client)
                    await create_namespace(client, name)
                    yield Cluster(client, server, name, out)
                finally:
                    with contextlib.suppress(Exception):
                        await _no_pods(client, name)  # the agent stops their containers and sandboxes
                    _stop(agent, cgroup, tmp_path)
                    await client.close()
                    server.stop()
        finally:
            upstream.stop()


def _statefulset(out: Path) -> dict[str, Any]:
    """One replica, which writes its `hostname -f` (its /etc/hosts line) where the test reads it."""
    labels = {"app": "db"}
    container = {"name": "db", "image": "host", "command": ["sh", "-c", "hostname -f > /out/db.fqdn; sleep 3600"],
                 "volumeMounts": [{"name": "out", "mountPath": "/out"}]}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [container],
                                           "volumes": [{"name": "out", "hostPath": {"path": str(out)}}]}}}}


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
    await c.create(STATEFULSETS, _statefulset(cluster.out), ns)
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
    assert read("db.fqdn").strip() == "db-0.db.shop.svc.cluster.local"  # its /etc/hosts names it so


async def test_host_network_pods_use_cluster_dns_only_when_asked(cluster: Cluster) -> None:
    c, ns = cluster.client, cluster.ns
    web = await c.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                    "spec": {"ports": [{"port": 80}]}}, ns)
    script = "cat /etc/resolv.conf > /out/{name}.resolv; getent hosts web > /out/{name}.web; true"
    for name, extra in (("hostnet", {"dnsPolicy": "ClusterFirstWithHostNet"}), ("plain", {}),
                        ("none", {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.244.5.1"],
                                                                     "searches": [f"{ns}.svc.cluster.local"],
                                                                     "options": [{"name": "ndots", "value": "2"}]}})):
        await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
            "nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "hostNetwork": True,
            "containers": [{"name": "c", "image": "host", "command": ["sh", "-c", script.format(name=name)],
                            "volumeMounts": [{"name": "out", "mountPath": "/out"}]}],
            "volumes": [{"name": "out", "hostPath": {"path": str(cluster.out)}}], **extra}}, ns)
    for name in ("hostnet", "plain", "none"):
        await pod_when(c, ns, name, lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"), within=60)
    ip = web["spec"]["clusterIP"]
    hostnet = (cluster.out / "hostnet.resolv").read_text()
    assert "nameserver 10.244.5.1" in hostnet and f"search {ns}.svc.cluster.local svc.cluster.local" in hostnet
    assert (cluster.out / "hostnet.web").read_text().split()[:1] == [ip]
    # A host-network pod with the default policy keeps the node's own resolv.conf.
    assert "10.244.5.1" not in (cluster.out / "plain.resolv").read_text()
    assert (cluster.out / "none.resolv").read_text() == (
        f"nameserver 10.244.5.1\nsearch {ns}.svc.cluster.local\noptions ndots:2\n")
    assert (cluster.out / "none.web").read_text().split()[:1] == [ip]
