"""A pod's network bytes as the agent reads them: from inside the pod's network namespace
(two namespaces of the test's, joined by a veth pair, stand for two pods), summed over its
interfaces but loopback, and recorded by the history as pod_network_{receive,transmit}_bytes_total."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from bosun.agent.podnet import netns_counters, parse_net_dev
from bosun.monitoring.ingest import POD_RX, POD_TX, pod_samples


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    a, b = (f"bpn{uuid.uuid4().hex[:6]}" for _ in range(2))
    sh("ip", "netns", "add", a)
    sh("ip", "netns", "add", b)
    try:
        sh("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
        for ns, ip in ((a, "10.78.0.1/24"), (b, "10.78.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", ip, "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


async def test_counters_are_read_inside_the_pods_namespace(pair: tuple[str, str]) -> None:
    a, b = pair
    before = await netns_counters(f"/run/netns/{b}")
    assert set(before) == {"eth0"}  # loopback left out
    send = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for _ in range(20): s.sendto(b'x' * 1000, ('10.78.0.2', 9))")
    sh("ip", "netns", "exec", a, sys.executable, "-c", send)
    after_b = await netns_counters(f"/run/netns/{b}")
    after_a = await netns_counters(f"/run/netns/{a}")
    assert after_b["eth0"][0] - before["eth0"][0] >= 20 * 1000  # received by b
    assert after_a["eth0"][1] >= 20 * 1000  # sent by a
    summary = {"pods": [{"podRef": {"namespace": "shop", "name": "web"},
                         "network": {"rxBytes": after_b["eth0"][0], "txBytes": after_b["eth0"][1]}}]}
    got = {name: value for name, labels, value in pod_samples("n1", summary) if name in (POD_RX, POD_TX)}
    assert got == {POD_RX: float(after_b["eth0"][0]), POD_TX: float(after_b["eth0"][1])}


def test_parse_net_dev() -> None:
    text = ("Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
            "carrier compressed\n"
            "    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0 "
            "      0          0\n"
            "  eth0:   12345      10    0    0    0     0          0         0     6789       9    0    0    0     0 "
            "      0          0\n")
    assert parse_net_dev(text) == {"eth0": (12345, 6789)}
