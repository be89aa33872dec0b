"""The pod network across nodes on the multi-node harness: each node gets its own /24 of the
cluster CIDR from the control plane, and pods on different nodes talk over TCP and UDP
through the VXLAN overlay, each seeing the other's real address."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest
from tests.harness import NetCluster
from tests.harness.fixtures import NetClusterFactory, requires_netns
from tests.harness.pods import pod, run_pods

from bosun.network.overlay import DEVICE, VTEP_MAC

pytestmark = [requires_netns, pytest.mark.timeout(240)]

# Answers each TCP connection and UDP datagram with the address it came from.
ECHO_SOURCE = """
import socket, threading
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("", 8081))
    while True:
        _, peer = u.recvfrom(100)
        u.sendto(peer[0].encode(), peer)
threading.Thread(target=udp, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 8080))
s.listen()
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode())
    c.close()
"""

ASK = """
import socket, sys
ip = sys.argv[1]
c = socket.create_connection((ip, 8080), timeout=3)
print(c.recv(100).decode())
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(b"who", (ip, 8081))
print(u.recvfrom(100)[0].decode())
"""


def ask(cluster: NetCluster, ns: str, client: str, server_ip: str, within: float = 30) -> list[str]:
    """What ``server_ip`` saw as our address over TCP then UDP (retried while the server starts)."""
    deadline = time.monotonic() + within
    while True:
        done = cluster.kubectl("exec", "-n", ns, client, "--", "python3", "-c", ASK, server_ip)
        if done.returncode == 0 or time.monotonic() > deadline:
            assert done.returncode == 0, done.stderr
            return done.stdout.split()
        time.sleep(0.5)


def node_objects(cluster: NetCluster) -> dict[str, Any]:
    return {n["metadata"]["name"]: n for n in cluster.kubectl_json("get", "nodes")["items"]}


def test_pods_on_different_nodes_talk_with_their_real_addresses(netcluster_factory: NetClusterFactory) -> None:
    cluster = netcluster_factory(2)
    nodes = node_objects(cluster)
    cidrs = {name: n["spec"]["podCIDR"] for name, n in nodes.items()}
    assert len(set(cidrs.values())) == 2
    assert all(ipaddress.IPv4Network(c).subnet_of(ipaddress.IPv4Network("10.244.0.0/16")) and c.endswith("/24")
               for c in cidrs.values()), cidrs
    assert all(n["metadata"]["annotations"].get(VTEP_MAC) for n in nodes.values())

    ns = "podnet"
    cluster.kubectl("create", "namespace", ns)
    running = run_pods(cluster, [
        pod("echo-1", "n1", ["python3", "-c", ECHO_SOURCE], namespace=ns, ports=[8080]),
        pod("echo-2", "n2", ["python3", "-c", ECHO_SOURCE], namespace=ns, ports=[8080]),
    ])
    ip1, ip2 = running["echo-1"]["status"]["podIP"], running["echo-2"]["status"]["podIP"]
    assert ipaddress.ip_address(ip1) in ipaddress.ip_network(cidrs["n1"])
    assert ipaddress.ip_address(ip2) in ipaddress.ip_network(cidrs["n2"])
    # Across the overlay both ways, TCP and UDP: no masquerade between pods.
    assert ask(cluster, ns, "echo-1", ip2) == [ip1, ip1]
    assert ask(cluster, ns, "echo-2", ip1) == [ip2, ip2]
    # Pods' MTU leaves room for the VXLAN header on the nodes' 1500-byte links.
    mtu = cluster.kubectl("exec", "-n", ns, "echo-1", "--", "cat", "/sys/class/net/eth0/mtu")
    assert mtu.stdout.strip() == "1450", mtu.stderr
    # A node reaches the other node's pods too (its own address as the source).
    n1 = cluster.node("n1")
    assert cluster.sh(n1.netns, "busybox", "ping", "-c1", "-W2", ip2).returncode == 0

    # A third node joins: it gets the next block, and the others route to it at once.
    third = cluster.add_node()
    cidr3 = node_objects(cluster)[third.name]["spec"]["podCIDR"]
    assert cidr3 not in cidrs.values()
    running = run_pods(cluster, [pod("echo-3", third.name, ["python3", "-c", ECHO_SOURCE], namespace=ns,
                                     ports=[8080])])
    ip3 = running["echo-3"]["status"]["podIP"]
    assert ask(cluster, ns, "echo-1", ip3) == [ip1, ip1]
    assert ask(cluster, ns, "echo-3", ip2) == [ip3, ip3]


def overlay_state(cluster: NetCluster, node: str) -> tuple[list[str], list[str], list[str]]:
    """A node's overlay routes (protocol 176, unicast), FDB and neighbour entries on bosun.1."""
    netns = cluster.node(node).netns
    routes = [line for line in cluster.sh(netns, "ip", "route", "show", "proto", "176").stdout.splitlines()
              if not line.startswith("unreachable")]
    fdb = cluster.sh(netns, "bridge", "fdb", "show", "dev", DEVICE).stdout.splitlines()
    neigh = cluster.sh(netns, "ip", "neigh", "show", "dev", DEVICE).stdout.splitlines()
    return sorted(routes), sorted(fdb), sorted(neigh)


def test_agent_restart_adopts_the_overlay_and_a_deleted_node_leaves_it(
        netcluster_factory: NetClusterFactory) -> None:
    # Generous timings: a restart on a busy machine must not look like a node's death.
    cluster = netcluster_factory(3, node_monitor_grace_period=30.0, pod_eviction_timeout=60.0)
    # The agents program their peers a moment after the nodes are Ready.
    deadline = time.monotonic() + 30
    before = overlay_state(cluster, "n1")
    while [len(part) for part in before] != [2, 2, 2] and time.monotonic() < deadline:
        time.sleep(0.2)
        before = overlay_state(cluster, "n1")
    assert [len(part) for part in before] == [2, 2, 2], before  # one of each per peer
    ns = "podnet-restart"
    cluster.kubectl("create", "namespace", ns)
    running = run_pods(cluster, [pod(f"echo-{i}", f"n{i}", ["python3", "-c", ECHO_SOURCE], namespace=ns,
                                     ports=[8080]) for i in (1, 2)])
    ip1, ip2 = (running[f"echo-{i}"]["status"]["podIP"] for i in (1, 2))
    cluster.restart_agent("n1")
    assert overlay_state(cluster, "n1") == before  # same device (MAC), same entries, no doubles
    assert ask(cluster, ns, "echo-1", ip2) == [ip1, ip1]

    cidr3 = node_objects(cluster)["n3"]["spec"]["podCIDR"]
    cluster.kubectl("delete", "node", "n3")
    deadline = time.monotonic() + 20
    while cidr3 in " ".join(overlay_state(cluster, "n1")[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    routes, fdb, neigh = overlay_state(cluster, "n1")
    assert len(routes) == len(fdb) == len(neigh) == 1 and cidr3 not in routes[0]


def test_host_gw_backend_routes_pods_through_the_peers_address(netcluster_factory: NetClusterFactory) -> None:
    cluster = netcluster_factory(2, server_args=("--network-backend", "host-gw"))
    n1, n2 = cluster.node("n1"), cluster.node("n2")
    cidr2 = node_objects(cluster)["n2"]["spec"]["podCIDR"]
    assert f"{cidr2} via {n2.ip}" in cluster.sh(n1.netns, "ip", "route", "show", "proto", "176").stdout
    assert DEVICE not in cluster.sh(n1.netns, "ip", "link", "show").stdout
    ns = "podnet-hostgw"
    cluster.kubectl("create", "namespace", ns)
    running = run_pods(cluster, [pod(f"echo-{i}", f"n{i}", ["python3", "-c", ECHO_SOURCE], namespace=ns,
                                     ports=[8080]) for i in (1, 2)])
    ip1, ip2 = (running[f"echo-{i}"]["status"]["podIP"] for i in (1, 2))
    assert ask(cluster, ns, "echo-1", ip2) == [ip1, ip1]
    assert ask(cluster, ns, "echo-2", ip1) == [ip2, ip2]
    # No VXLAN header to make room for: pods keep the link's MTU.
    mtu = cluster.kubectl("exec", "-n", ns, "echo-1", "--", "cat", "/sys/class/net/eth0/mtu")
    assert mtu.stdout.strip() == "1500", mtu.stderr
