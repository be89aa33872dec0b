"""The overlay with real kernel state: two "nodes" (network namespaces joined by a veth
pair), each with a pod namespace on a bridge, programmed from Node objects in a real API
server; traffic between the pods goes through VXLAN or host-gw routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import client_for, eventually

from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.controllers._common import NODES
from bosun.network.config import NetworkConfig
from bosun.network.node import NodeNetworkContext
from bosun.network.overlay import DEVICE, VTEP_MAC, Overlay

pytestmark = pytest.mark.timeout(120)


def sh(*cmd: str, check: bool = True) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


def ns(name: str, *cmd: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", name, *cmd, check=check)


@dataclass
class Host:
    name: str  # node name
    netns: str
    pod_ns: str
    ip: str
    cidr: str

    @property
    def pod_ip(self) -> str:
        return self.cidr.replace(".0/24", ".2")


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    """Two nodes on one link, each with one pod; all removed at the end."""
    tag = f"ipo{uuid.uuid4().hex[:5]}"
    made: list[str] = []
    try:
        out = []
        for i, letter in enumerate("ab"):
            host = Host(f"node-{letter}", f"{tag}{letter}", f"{tag}p{letter}", f"192.168.231.{i + 1}",
                        f"10.244.{i + 1}.0/24")
            for name in (host.netns, host.pod_ns):
                sh("ip", "netns", "add", name)
                made.append(name)
                ns(name, "ip", "link", "set", "lo", "up")
            ns(host.netns, "ip", "link", "add", "br0", "type", "bridge")
            ns(host.netns, "ip", "addr", "add", host.cidr.replace(".0/24", ".1/24"), "dev", "br0")
            ns(host.netns, "ip", "link", "set", "br0", "up")
            ns(host.netns, "ip", "link", "add", "veth-pod", "type", "veth", "peer", "name", "eth0", "netns",
               host.pod_ns)
            ns(host.netns, "ip", "link", "set", "veth-pod", "master", "br0", "up")
            ns(host.pod_ns, "ip", "addr", "add", f"{host.pod_ip}/24", "dev", "eth0")
            ns(host.pod_ns, "ip", "link", "set", "eth0", "up")
            ns(host.pod_ns, "ip", "route", "add", "default", "via", host.cidr.replace(".0/24", ".1"))
            out.append(host)
        a, b = out
        sh("ip", "link", "add", f"{tag}x", "netns", a.netns, "type", "veth", "peer", "name", f"{tag}y",
           "netns", b.netns)
        for host, dev in ((a, f"{tag}x"), (b, f"{tag}y")):
            ns(host.netns, "ip", "addr", "add", f"{host.ip}/24", "dev", dev)
            ns(host.netns, "ip", "link", "set", dev, "up")
            # An uplink that answers nothing: without the overlay's unreachable route, packets
            # for unknown pods would leave this way and hang until ARP gives up.
            ns(host.netns, "ip", "route", "add", "default", "via", "192.168.231.254")
        yield out
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
async def client(fresh_server: RunningServer) -> AsyncIterator[Client]:
    c = client_for(fresh_server)
    try:
        yield c
    finally:
        await c.close()


async def register(client: Client, host: Host) -> None:
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": host.name},
                                "spec": {"podCIDR": host.cidr, "podCIDRs": [host.cidr]}})
    await client.patch(NODES, host.name, {"status": {"addresses": [{"type": "InternalIP", "address": host.ip}]}},
                       subresource="status")


@contextlib.asynccontextmanager
async def overlay(client: Client, host: Host, backend: str, tmp: Path) -> AsyncIterator[Overlay]:
    ctx = NodeNetworkContext(client=client, informers=SharedInformers(client), node_name=host.name, node_ip=host.ip,
                             pod_cidr=host.cidr, network=NetworkConfig(backend=backend), state_dir=tmp)
    component = Overlay(ctx, netns=host.netns)
    await component.start()
    try:
        yield component
    finally:
        await component.stop()
        await ctx.informers.stop()


def routes(host: Host, kind: str = "unicast") -> list[dict[str, object]]:
    """The overlay's routes (protocol 176) in the main table: to peers, or "unreachable"."""
    found = json.loads(ns(host.netns, "ip", "-j", "route", "show", "proto", "176") or "[]")
    return [r for r in found if r.get("type", "unicast") == kind]


def fdb(host: Host) -> list[dict[str, object]]:
    return json.loads(ns(host.netns, "bridge", "-j", "fdb", "show", "dev", DEVICE) or "[]")


def tcp_source(server: Host, client: Host, port: int = 8080) -> str:
    """Connect from ``client``'s pod to ``server``'s pod; the source address the server saw."""
    code = (f"import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('0.0.0.0', {port})); s.listen(); s.settimeout(10); c, a = s.accept(); print(a[0]); "
            f"c.sendall(b'hi'); c.close()")
    srv = subprocess.Popen(["ip", "netns", "exec", server.pod_ns, sys.executable, "-c", code],
                           stdout=subprocess.PIPE, text=True)
    try:
        connect = (f"import socket, time\nfor _ in range(50):\n  try:\n"
                   f"    c = socket.create_connection(('{server.pod_ip}', {port}), timeout=3); break\n"
                   f"  except ConnectionRefusedError: time.sleep(0.1)\nassert c.recv(2) == b'hi'")
        ns(client.pod_ns, sys.executable, "-c", connect)
        out, _ = srv.communicate(timeout=15)
        return out.strip()
    finally:
        srv.kill()
        srv.wait()


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
async def test_pods_on_two_nodes_reach_each_other(hosts: list[Host], client: Client, tmp_path: Path,
                                                  backend: str) -> None:
    a, b = hosts
    await register(client, a)
    await register(client, b)
    async with overlay(client, a, backend, tmp_path / "a"), overlay(client, b, backend, tmp_path / "b"):
        await eventually(lambda: asyncio.to_thread(lambda: len(routes(a)) == 1 and len(routes(b)) == 1),
                         what="a route to the peer on each node")
        assert "1 packets received" in ns(a.pod_ns, "busybox", "ping", "-c", "1", "-W", "3", b.pod_ip, check=False)
        assert await asyncio.to_thread(tcp_source, b, a) == a.pod_ip  # the pod's own address
        assert await asyncio.to_thread(tcp_source, a, b) == b.pod_ip
        if backend == "vxlan":
            node_b = await client.get(NODES, b.name)
            mac = node_b["metadata"]["annotations"][VTEP_MAC]
            assert [(e["mac"], e["dst"]) for e in fdb(a)] == [(mac, b.ip)]
            link = json.loads(ns(a.netns, "ip", "-j", "-d", "link", "show", DEVICE))[0]
            assert link["linkinfo"]["info_data"]["id"] == 1 and link["linkinfo"]["info_data"]["port"] == 8472
            assert link["mtu"] == 1450  # the veth's 1500 less the VXLAN header
        else:
            assert routes(a)[0]["gateway"] == b.ip


async def test_peer_removal_restart_and_unreachable(hosts: list[Host], client: Client, tmp_path: Path) -> None:
    a, b = hosts
    await register(client, a)
    await register(client, b)
    async with overlay(client, b, "vxlan", tmp_path / "b"):
        async with overlay(client, a, "vxlan", tmp_path / "a"):
            await eventually(lambda: asyncio.to_thread(lambda: len(routes(a)) == 1), what="a's route to b")
            mac = json.loads(ns(a.netns, "ip", "-j", "link", "show", DEVICE))[0]["address"]
        # Restarted: the device (and its MAC, which peers hold) is adopted; nothing doubles.
        async with overlay(client, a, "vxlan", tmp_path / "a") as again:
            assert again.mac == mac
            await again.sync()
            assert len(routes(a)) == 1 and len(fdb(a)) == 1
            neigh = json.loads(ns(a.netns, "ip", "-j", "neigh", "show", "dev", DEVICE))
            assert len(neigh) == 1
            assert await asyncio.to_thread(tcp_source, b, a) == a.pod_ip
            # The peer goes: its route, neighbour and FDB entry go too.
            await client.delete(NODES, b.name)
            await eventually(lambda: asyncio.to_thread(lambda: not routes(a) and not fdb(a)),
                             what="the peer's entries to go")
            assert json.loads(ns(a.netns, "ip", "-j", "neigh", "show", "dev", DEVICE)) == []
            # Nothing routes b's pods now: refused at once, not left to time out.
            for target in (b.pod_ip, "10.96.7.7"):  # a pod nobody routes; a service address no rule has
                probe = ("import socket, errno, time\nstarted = time.monotonic()\ntry:\n"
                         f"  socket.create_connection(('{target}', 8080), timeout=10)\nexcept OSError as e:\n"
                         "  print(errno.errorcode[e.errno], time.monotonic() - started)")
                error, took = ns(a.pod_ns, sys.executable, "-c", probe).split()
                assert error in ("ENETUNREACH", "EHOSTUNREACH") and float(took) < 1.0, target
            # The node's own packets for the service CIDR see the main table (the service
            # proxy's NAT rewrites them after routing): not refused by the overlay.
            assert "unreachable" not in ns(a.netns, "ip", "route", "get", "10.96.7.7")
            assert [r["dst"] for r in routes(a, "unreachable")] == ["10.244.0.0/16"]
            await again.stop(remove=True)
            assert DEVICE not in ns(a.netns, "ip", "link", "show")
            assert routes(a) == [] and routes(a, "unreachable") == []
            assert "30989" not in ns(a.netns, "ip", "rule", "show")
