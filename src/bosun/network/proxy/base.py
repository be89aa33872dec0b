"""The fixed part of ``table ip bosun``: hooks, the verdict maps, and the node's masquerade.

Written once, on the proxy's first sync, in the same transaction as every Service (the table
is deleted and made again there, so a restarted agent never finds duplicates: established
connections keep their NAT in conntrack, which the table does not hold).

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
- ``nat-postrouting`` (srcnat): the masquerade mark (hairpin, external ``Cluster`` traffic)
  and the pods' outbound masquerade.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bosun.network.proxy.state import (
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
    ]
    if net.pod_cidr:
        cmds.append(f"add rule {T} nat-postrouting ip saddr {net.pod_cidr} "
                    f"ip daddr != {{ {_cluster_destinations(net)} }} masquerade")
    return cmds


def recreate_commands() -> list[str]:
    """Start from an empty table whether or not one exists (one transaction with what follows)."""
    return [f"add table {T}", f"delete table {T}", f"add table {T}"]


def remove_commands() -> list[str]:
    return [f"add table {T}", f"delete table {T}"]
