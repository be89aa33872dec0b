"""The harness's network: namespaces, one bridge standing for the data-centre network, veths.

Layout for harness id ``ID`` (names carry the prefix ``bnh`` and the id so that parallel runs
and a sweep of leftovers can tell theirs apart; link names stay within IFNAMSIZ, 15 bytes)::

    root namespace                 bnhID-br (bridge namespace)              bnhID-n1 (node)
    bnhIDm 198.18.X.1/24 ---veth--- mgr ─┐
                                         br0 ── n1 ────────────veth──────── eth0 198.18.X.11/24
                                         │ ── n2 ... (one per node)
                                         └─ c ─────────────────veth──────── eth0 198.18.X.250/24 (bnhID-c)

The /24 is picked at random from 198.18.0.0/15 (the benchmarking range), skipping any /24
that already has an address on this machine, under a lock so two harnesses starting at the
same moment never pick the same one. Nothing leaves these namespaces but the root veth.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

PREFIX = "bnh"
LOCK = Path("/tmp/bosun-harness/.subnet.lock")
BENCH_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
CLIENT_HOST = 250


class NetError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raises NetError (with ip's message) on failure when ``check``."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def netns_list() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


def _used_subnets() -> set[ipaddress.IPv4Network]:
    out = set()
    for line in ip("-o", "-4", "addr", "show").stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
            out.add(ipaddress.IPv4Network(f"{iface.ip}/24", strict=False))
    return out


@contextlib.contextmanager
def subnet_lock() -> Iterator[None]:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def pick_subnet() -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/15 with no address on this machine (call under subnet_lock)."""
    used = _used_subnets()
    free = [n for n in BENCH_RANGE.subnets(new_prefix=24) if n not in used]
    if not free:
        raise NetError("every /24 of 198.18.0.0/15 is in use on this machine")
    return random.choice(free)


class HarnessNet:
    """The namespaces and links of one harness. Every method is idempotent where teardown
    needs it (removing something already gone is not an error)."""

    def __init__(self, hid: str, subnet: ipaddress.IPv4Network) -> None:
        self.hid = hid
        self.subnet = subnet
        self.bridge_ns = f"{PREFIX}{hid}-br"
        self.client_ns = f"{PREFIX}{hid}-c"
        self.root_link = f"{PREFIX}{hid}m"

    def host(self, n: int) -> str:
        return str(self.subnet.network_address + n)

    @property
    def manager_ip(self) -> str:
        """The root namespace's address on the network: where the control plane listens."""
        return self.host(1)

    @property
    def client_ip(self) -> str:
        return self.host(CLIENT_HOST)

    def node_ns(self, name: str) -> str:
        return f"{PREFIX}{self.hid}-{name}"

    def create(self) -> None:
        """The bridge namespace with br0, the root veth with the manager address, the client."""
        ip("netns", "add", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "set", "lo", "up")
        ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        ip("link", "add", self.root_link, "type", "veth", "peer", "name", "mgr", "netns", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "set", "mgr", "master", "br0", "up")
        ip("addr", "add", f"{self.manager_ip}/24", "dev", self.root_link)
        ip("link", "set", self.root_link, "up")
        self.attach(self.client_ns, "c", self.client_ip)

    def attach(self, netns: str, port: str, address: str) -> None:
        """A new namespace ``netns`` with ``eth0`` = ``address``/24, plugged into br0 as ``port``."""
        ip("netns", "add", netns)
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", self.bridge_ns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("-n", self.bridge_ns, "link", "set", port, "master", "br0", "up")
        ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                       capture_output=True, timeout=10, check=False)

    def set_port(self, port: str, up: bool) -> None:
        """Cut (down) or restore (up) a namespace's link to the bridge: a partition."""
        ip("-n", self.bridge_ns, "link", "set", port, "up" if up else "down")

    def delete_ns(self, netns: str) -> None:
        """Remove a namespace: its links (and their bridge ports) and nft tables go with it
        once no process is left inside it."""
        ip("netns", "del", netns, check=False)

    def destroy(self) -> None:
        for ns in netns_list():
            if ns.startswith(f"{PREFIX}{self.hid}-"):
                self.delete_ns(ns)
        ip("link", "del", self.root_link, check=False)


def leftover_links(hid: str) -> list[str]:
    """Root-namespace links of harness ``hid`` (for checks and the sweep)."""
    out = []
    for line in ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(f"{PREFIX}{hid}"):
            out.append(name)
    return out
