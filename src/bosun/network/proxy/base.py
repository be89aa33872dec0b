"""The fixed part of ``table ip bosun``: hooks, the verdict maps, and the node's masquerade.

Written on the proxy's first sync, in the same transaction as every Service: what an earlier
proxy left is removed first (read once, by name: :func:`teardown_commands`), so a restarted
agent never finds duplicates, and established connections keep their NAT (it lives in
conntrack, not in the table). Other components' objects in the table are left alone.

The pod masquerade lives here, not in the CNI plugin, so one component owns the node's NAT:
what local pods send outside the cluster leaves with the node's address, while pod-to-pod
traffic (also across nodes) keeps its source address.

Hooks and priorities (kube-proxy's, so a reader of one knows the other):

- ``filter-prerouting``/``filter-output`` (-110, before DNAT): new connections to a Service port
  without endpoints are rejected before any routing decision.
- ``nat-prerouting``/``nat-output`` (-100, dstnat): the ``services`` chain, the verdict maps.
- ``filter-forward``/``filter-output-post`` (filter): a service-range address that no rule
  translated (a Service not yet programmed) is refused instead of leaving by the default route.
  A NetworkPolicy chain for the forward path can sit in this table beside them.
- ``nat-postrouting`` (srcnat): the masquerade mark (external ``Cluster`` traffic), hairpin
  (the ``hairpin`` set) and the pods' outbound masquerade.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bosun.network.proxy.state import (
    HAIRPIN,
    MASQ_CHAIN,
    NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    REJECT_CHAIN,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
)

FAMILY = "ip"
TABLE = "bosun"
T = f"{FAMILY} {TABLE}"
MASQ_MARK = 0x4000
_LOCAL_DST = "fib daddr type local ip daddr != 127.0.0.0/8"


@dataclass(frozen=True)
class NodeNetwork:
    """The addresses the fixed rules name."""

    cluster_cidr: str
    service_cidr: str
    pod_cidr: str


def _cluster_destinations(net: NodeNetwork) -> str:
    """Where pod traffic keeps its source: the cluster (and the node's own podCIDR, should it
    lie outside the cluster CIDR, as with an older agent) and multicast."""
    nets = [ipaddress.IPv4Network(c) for c in (net.cluster_cidr, net.pod_cidr, "224.0.0.0/4") if c]
    return ", ".join(str(n) for n in ipaddress.collapse_addresses(nets))


def base_commands(net: NodeNetwork) -> list[str]:
    """``nft -f`` commands that make the table's fixed part (into an empty table)."""
    addr_key = "ipv4_addr . inet_proto . inet_service"
    port_key = "inet_proto . inet_service"
    cmds = [
        f"add map {T} {SERVICE_IPS} {{ type {addr_key} : verdict; }}",
        f"add map {T} {SERVICE_NODEPORTS} {{ type {port_key} : verdict; }}",
        f"add map {T} {NO_ENDPOINT_SERVICES} {{ type {addr_key} : verdict; }}",
        f"add map {T} {NO_ENDPOINT_NODEPORTS} {{ type {port_key} : verdict; }}",
        f"add set {T} {HAIRPIN} {{ type ipv4_addr . ipv4_addr; }}",
        f"add chain {T} {REJECT_CHAIN}",
        f"add rule {T} {REJECT_CHAIN} reject",
        f"add chain {T} {MASQ_CHAIN}",
        f"add rule {T} {MASQ_CHAIN} meta mark set meta mark or {MASQ_MARK:#x}",
        f"add chain {T} endpoints-check",
        f"add rule {T} endpoints-check ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",
        f"add rule {T} endpoints-check {_LOCAL_DST} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
        f"add chain {T} services",
        f"add rule {T} services ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
        f"add rule {T} services {_LOCAL_DST} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
    ]
    for hook in ("prerouting", "output"):
        cmds += [f"add chain {T} filter-{hook} {{ type filter hook {hook} priority -110; }}",
                 f"add rule {T} filter-{hook} ct state new jump endpoints-check",
                 f"add chain {T} nat-{hook} {{ type nat hook {hook} priority -100; }}",
                 f"add rule {T} nat-{hook} jump services"]
    for name, hook in (("filter-forward", "forward"), ("filter-output-post", "output")):
        cmds += [f"add chain {T} {name} {{ type filter hook {hook} priority filter; }}",
                 f"add rule {T} {name} ct state new ip daddr {net.service_cidr} reject"]
    cmds += [
        f"add chain {T} nat-postrouting {{ type nat hook postrouting priority srcnat; }}",
        f"add rule {T} nat-postrouting meta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} masquerade",
        f"add rule {T} nat-postrouting ip saddr . ip daddr @{HAIRPIN} masquerade",
    ]
    if net.pod_cidr:
        cmds.append(f"add rule {T} nat-postrouting ip saddr {net.pod_cidr} "
                    f"ip daddr != {{ {_cluster_destinations(net)} }} masquerade")
    return cmds


# Everything this module and .state name; the table may also hold other components' objects
# (NetworkPolicy's chains and maps), which a rebuild must leave alone.
BASE_CHAINS = ("reject-chain", MASQ_CHAIN, "endpoints-check", "services", "filter-prerouting", "nat-prerouting",
               "filter-output", "nat-output", "filter-forward", "filter-output-post", "nat-postrouting")
BASE_SETS = (SERVICE_IPS, SERVICE_NODEPORTS, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS, HAIRPIN)
SERVICE_CHAIN_PREFIXES = ("svc-", "ext-", "ep-")
SERVICE_SET_PREFIXES = ("aff-",)


def is_own_chain(name: str) -> bool:
    return name in BASE_CHAINS or name.startswith(SERVICE_CHAIN_PREFIXES)


def is_own_set(name: str) -> bool:
    return name in BASE_SETS or name.startswith(SERVICE_SET_PREFIXES)


@dataclass(frozen=True)
class Existing:
    """The names the table holds now (read once per rebuild: names only, no rules or elements)."""

    chains: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    maps: tuple[str, ...] = ()


def teardown_commands(existing: Existing) -> list[str]:
    """Remove the proxy's objects among ``existing``, leaving the rest of the table: chains and
    maps are emptied first, so nothing refers to what is deleted after them."""
    chains = [c for c in existing.chains if is_own_chain(c)]
    sets = [s for s in existing.sets if is_own_set(s)]
    maps = [m for m in existing.maps if is_own_set(m)]
    cmds = [f"add table {T}"]
    cmds += [f"flush chain {T} {c}" for c in chains]
    cmds += [f"flush map {T} {m}" for m in maps]
    cmds += [f"delete chain {T} {c}" for c in chains]
    cmds += [f"delete set {T} {s}" for s in sets]
    cmds += [f"delete map {T} {m}" for m in maps]
    return cmds


def remove_commands() -> list[str]:
    return [f"add table {T}", f"delete table {T}"]
