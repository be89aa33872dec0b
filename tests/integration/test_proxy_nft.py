"""The proxy's transactions against the real kernel, inside a network namespace of the test's
own (never the root namespace): connections to a cluster IP and a NodePort reach the endpoint,
a Service without endpoints (or not programmed yet) refuses at once, a full resync after a
restart leaves no duplicate, and removal leaves no table."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bosun.network.proxy.apply import Kernel
from bosun.network.proxy.base import NodeNetwork
from bosun.network.proxy.diff import diff, full
from bosun.network.proxy.state import NodeView, Ruleset, ruleset, service_rules

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="needs root and nft")]

NET = NodeNetwork(cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16", pod_cidr="10.244.1.0/24")
NODE = NodeView(node_name="n1", cluster_cidr=NET.cluster_cidr)

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(16); print("up", flush=True)
while True:
    c, peer = s.accept(); c.sendall(f"{c.getsockname()[0]} from {peer[0]}".encode()); c.close()
"""
CLIENT = """
import socket, sys, time
t = time.monotonic()
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); print(c.recv(100).decode())
except OSError as e:
    print(type(e).__name__, round(time.monotonic() - t, 2))
"""


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A node stand-in: one namespace, a veth pair whose far end holds the "pod" address."""
    name = f"bpx{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    server: subprocess.Popen[str] | None = None
    try:
        ns = ("ip", "-n", name)
        sh(*ns, "link", "set", "lo", "up")
        sh(*ns, "link", "add", "pxa", "type", "veth", "peer", "name", "pxb")
        sh(*ns, "addr", "add", "10.244.1.1/24", "dev", "pxa")
        sh(*ns, "addr", "add", "10.244.1.5/24", "dev", "pxb")
        sh(*ns, "link", "set", "pxa", "up")
        sh(*ns, "link", "set", "pxb", "up")
        sh(*ns, "route", "add", "10.96.0.0/16", "dev", "pxa")
        server = subprocess.Popen(["ip", "netns", "exec", name, "python3", "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        yield name
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def connect(ns: str, ip: str, port: int) -> str:
    return sh("ip", "netns", "exec", ns, "python3", "-c", CLIENT, ip, str(port)).strip()


def web(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.10", "type": "NodePort",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}], **spec}}


def web_slice(*ips: str) -> dict[str, Any]:
    return {"metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "nodeName": "n1", "conditions": {"ready": True}} for ip in ips]}


def listing(ns: str) -> str:
    return sh("ip", "netns", "exec", ns, "nft", "list", "table", "ip", "bosun")


async def test_programs_routes_rejects_resyncs_and_removes(netns: str) -> None:
    kernel = Kernel(("nsenter", f"--net=/run/netns/{netns}"))
    one = ruleset([service_rules(web(), [web_slice("10.244.1.5")], NODE)])
    await kernel.apply(full(NET, one))
    assert connect(netns, "10.96.0.10", 80) == "10.244.1.5 from 10.244.1.1"
    assert connect(netns, "10.244.1.1", 30080).startswith("10.244.1.5 from ")  # NodePort on a local address
    first = listing(netns)

    none = ruleset([service_rules(web(), [web_slice()], NODE)])
    await kernel.apply(diff(one, none))
    out = connect(netns, "10.96.0.10", 80)
    assert out.startswith("ConnectionRefusedError") and float(out.split()[1]) < 1
    assert connect(netns, "10.244.1.1", 30080).startswith("ConnectionRefusedError")
    assert connect(netns, "10.96.0.99", 80).startswith("ConnectionRefusedError")  # no rule for it yet

    await kernel.apply(diff(none, one))
    assert connect(netns, "10.96.0.10", 80) == "10.244.1.5 from 10.244.1.1"
    assert listing(netns) == first
    # A restarted proxy's first sync replaces the table whole: the same rules, once.
    await kernel.apply(full(NET, one))
    assert listing(netns) == first
    assert first.count("svc-shop/web/tcp/80 {") == 1

    await kernel.remove_table()
    assert "bosun" not in sh("ip", "netns", "exec", netns, "nft", "list", "tables")


async def test_affinity_keeps_a_client_on_one_endpoint(netns: str) -> None:
    sh("ip", "-n", netns, "addr", "add", "10.244.1.6/24", "dev", "pxb")
    kernel = Kernel(("nsenter", f"--net=/run/netns/{netns}"))
    spec = {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}
    rules = ruleset([service_rules(web(**spec), [web_slice("10.244.1.5", "10.244.1.6")], NODE)])
    await kernel.apply(full(NET, rules))
    answers = {connect(netns, "10.96.0.10", 80) for _ in range(8)}
    assert len(answers) == 1
    endpoint = answers.pop().split()[0]
    pinned = sh("ip", "netns", "exec", netns, "nft", "list", "set", "ip", "bosun",
                f"aff-shop/web/tcp/80/{endpoint}/8080")
    assert "elements = { 10.244.1.1 timeout 30s" in pinned
    await kernel.apply(diff(rules, Ruleset()))


UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 5353)); print("up", flush=True)
while True:
    data, peer = s.recvfrom(100); s.sendto(sys.argv[1].encode(), peer)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.bind(("10.244.1.1", 40000))
for line in sys.stdin:
    s.sendto(b"?", ("10.96.0.53", 53))
    try:
        print(s.recvfrom(100)[0].decode(), flush=True)
    except OSError as e:
        print(type(e).__name__, flush=True)
"""


def spawn(ns: str, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


async def test_udp_flows_of_a_removed_endpoint_are_flushed(netns: str) -> None:
    """A client that keeps its socket (as DNS resolvers do) reaches the new endpoint at once."""
    sh("ip", "-n", netns, "addr", "add", "10.244.1.6/24", "dev", "pxb")
    echo = [spawn(netns, UDP_ECHO, ip) for ip in ("10.244.1.5", "10.244.1.6")]
    client = spawn(netns, UDP_CLIENT)
    try:
        assert all(p.stdout is not None and p.stdout.readline().strip() == "up" for p in echo)
        assert client.stdin is not None and client.stdout is not None
        kernel = Kernel(("nsenter", f"--net=/run/netns/{netns}"))
        dns = web(clusterIP="10.96.0.53", type="ClusterIP", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])

        def rules(*ips: str) -> Ruleset:
            slc = web_slice(*ips)
            slc["ports"] = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
            return ruleset([service_rules(dns, [slc], NODE)])

        def ask() -> str:
            assert client.stdin is not None and client.stdout is not None
            client.stdin.write("\n")
            client.stdin.flush()
            return client.stdout.readline().strip()

        old = rules("10.244.1.5")
        await kernel.apply(full(NET, old))
        assert ask() == "10.244.1.5"
        new = rules("10.244.1.6")
        await kernel.apply(diff(old, new))
        assert ask() == "10.244.1.6"
    finally:
        for p in [*echo, client]:
            p.kill()
            p.wait()
