"""NetworkPolicy chains in a real kernel: a node namespace with a Linux bridge and three pod
namespaces on it (as the CNI bridge plugin lays them out), the policy rules rendered by
bosun.network.policy and committed with nft, and real TCP between the pods."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bosun.network.policy import render
from bosun.network.policy.rules import pod_rules

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("nft") and shutil.which("busybox")),
                                reason="needs root, nft and busybox")


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=20)


class Lab:
    """node namespace + bridge 10.244.1.1/24 + pod namespaces a/b/c at .2/.3/.4."""

    def __init__(self, tmp: Path) -> None:
        self.id = uuid.uuid4().hex[:6]
        self.node = f"npn{self.id}"
        self.pods = {name: (f"np{name}{self.id}", f"10.244.1.{i + 2}") for i, name in enumerate("abc")}
        self.servers: list[subprocess.Popen[bytes]] = []
        self.root = tmp

    def up(self) -> None:
        n = self.node
        sh("ip", "netns", "add", n)
        sh("ip", "-n", n, "link", "set", "lo", "up")
        sh("ip", "-n", n, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", n, "addr", "add", "10.244.1.1/24", "dev", "br0")
        sh("ip", "-n", n, "link", "set", "br0", "up")
        # what the agent sets for its pods: bridged traffic through the IP hooks
        sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        for name, (netns, ip) in self.pods.items():
            sh("ip", "netns", "add", netns)
            sh("ip", "-n", n, "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0", "netns", netns)
            sh("ip", "-n", n, "link", "set", f"v{name}", "master", "br0", "up")
            sh("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", netns, "link", "set", "eth0", "up")
            sh("ip", "-n", netns, "link", "set", "lo", "up")
            www = self.root / name
            www.mkdir()
            (www / "index.html").write_text(f"hello from {name}\n")
            self.servers.append(subprocess.Popen(["ip", "netns", "exec", netns, "busybox", "httpd", "-f",
                                                  "-p", "80", "-h", str(www)]))

    def wait_servers(self) -> None:
        """httpd binds a moment after it starts: wait until each answers its own namespace."""
        deadline = time.monotonic() + 10
        for name, (netns, ip) in self.pods.items():
            while not self._http(netns, ip, name):
                assert time.monotonic() < deadline, f"httpd in {name} does not answer"
                time.sleep(0.05)

    def get(self, src: str, dst: str) -> bool:
        """Does an HTTP GET from pod ``src`` to pod ``dst`` get an answer (2 s at most)?"""
        return self._http(self.pods[src][0], self.pods[dst][1], dst)

    @staticmethod
    def _http(netns: str, ip: str, name: str) -> bool:
        res = subprocess.run(["ip", "netns", "exec", netns, "busybox", "nc", "-w", "2", ip, "80"],
                             input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, timeout=20)
        return f"hello from {name}" in res.stdout

    def nft(self, cmds: list[str]) -> None:
        res = subprocess.run(["ip", "netns", "exec", self.node, "nft", "-f", "-"], input="\n".join(cmds) + "\n",
                             capture_output=True, text=True, timeout=20)
        assert res.returncode == 0, res.stderr

    def down(self) -> None:
        for p in self.servers:
            p.kill()
            p.wait()
        for netns, _ in self.pods.values():
            sh("ip", "netns", "del", netns, check=False)
        sh("ip", "netns", "del", self.node, check=False)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        lab.up()
        lab.wait_servers()
        yield lab
    finally:
        lab.down()
    left = sh("ip", "netns", "list").stdout
    assert lab.id not in left


def pods(lab: Lab) -> list[dict[str, object]]:
    return [{"metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}", "labels": {"app": name}},
             "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
             "status": {"phase": "Running", "podIP": ip}} for name, (_, ip) in lab.pods.items()]


def test_default_deny_allow_from_one_peer_and_removal(lab: Lab) -> None:
    assert lab.get("a", "c") and lab.get("b", "c")
    ns = [{"metadata": {"name": "shop", "labels": {}}}]
    allow_a = {"metadata": {"name": "only-a", "namespace": "shop"},
               "spec": {"podSelector": {"matchLabels": {"app": "c"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                                     "ports": [{"port": 80}]}]}}
    state = render.wanted(pod_rules(pods(lab), pods(lab), ns, [allow_a]))
    lab.nft(render.base_objects() + render.transaction(render.Wanted(), state))
    assert lab.get("a", "c"), "the allowed peer is let through"
    assert not lab.get("b", "c"), "another pod is refused"
    assert lab.get("c", "a"), "c's egress is not isolated, and the answer comes back"
    # egress default-deny for a: a can no longer reach c, b still reaches a? (a's ingress is open)
    deny_out = {"metadata": {"name": "a-out", "namespace": "shop"},
                "spec": {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"]}}
    state2 = render.wanted(pod_rules(pods(lab), pods(lab), ns, [allow_a, deny_out]))
    lab.nft(render.transaction(state, state2))
    assert not lab.get("a", "c") and not lab.get("a", "b")
    assert lab.get("b", "a")
    # the policies go: everything flows again
    lab.nft(render.transaction(state2, render.Wanted()))
    assert lab.get("a", "c") and lab.get("b", "c")
    lab.nft(render.teardown([]))
    assert "chain" not in sh("ip", "netns", "exec", lab.node, "nft", "list", "table", "ip", "bosun").stdout
