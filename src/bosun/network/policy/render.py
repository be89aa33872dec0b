"""NetworkPolicy rules as nftables chains, and the transaction that moves the kernel from
what was committed last to what is wanted now.

Layout, in a table of its own, ``table ip bosun-policy`` (the service proxy's ``table ip
bosun`` is remade whole when the proxy restarts or recovers; with one owner per table neither
component can wipe the other's rules, and each stays testable alone)::

    chain policy-forward  (hook forward)  established/related -> accept
                                          ip daddr vmap @policy-ingress   (isolated pod -> its chain)
                                          ip saddr vmap @policy-egress
    chain pol-in-<id> / pol-out-<id>      one rule per allowed peer x ports -> return; then drop

The forward hook sees traffic after the service proxy's DNAT, so policies match pod
addresses as upstream defines them, and both bridged (same node, br_netfilter) and routed
(other nodes) packets. Traffic from the node itself (probes, the DNS server on the pod
gateway) goes through input/output, never forward, so it keeps working under default-deny.
Allowed traffic *returns* rather than accepts, so a packet between two isolated pods of one
node is checked for the receiver's ingress and the sender's egress in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bosun.network.policy.rules import PodRules, Ports, Rule

TABLE = "ip bosun-policy"
BASE = "policy-forward"
MAPS = {"ingress": "policy-ingress", "egress": "policy-egress"}


@dataclass
class Wanted:
    """Per chain its rule lines; per map its elements (pod ip -> chain)."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    elements: dict[str, dict[str, str]] = field(default_factory=lambda: {m: {} for m in MAPS.values()})


def _set(items: Iterable[str]) -> str:
    items = sorted(items)
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _port_matches(ports: tuple[Ports, ...]) -> list[str]:
    if not ports:
        return [""]
    by_proto: dict[str, list[str]] = {}
    everything: list[str] = []
    for p in ports:
        if p.first == 0:
            everything.append(p.protocol)
        else:
            by_proto.setdefault(p.protocol, []).append(str(p.first) if p.first == p.last else f"{p.first}-{p.last}")
    out = [f"meta l4proto {proto}" for proto in sorted(set(everything))]
    out += [f"meta l4proto {proto} th dport {_set(nums)}" for proto, nums in sorted(by_proto.items())
            if proto not in everything]
    return out


def _rule_lines(rule: Rule, direction: str) -> list[str]:
    addr = "ip saddr" if direction == "ingress" else "ip daddr"
    peers: list[str] = []
    if rule.peers is None:
        peers.append("")
    else:
        if rule.peers:
            peers.append(f"{addr} {_set(rule.peers)}")
        for cidr, excepts in rule.blocks:
            peers.append(f"{addr} {cidr}" + (f" {addr} != {_set(excepts)}" if excepts else ""))
    lines = [" ".join(x for x in (peer, port, "return") if x) for peer in peers for port in _port_matches(rule.ports)]
    lines += [f"ip daddr {ip} {_port_matches((p,))[0]} return" for ip, p in rule.per_peer]
    return lines


def pod_chains(pod: PodRules) -> list[tuple[str, str, list[str]]]:
    """One pod's chains as (map, chain name, rule lines): what :func:`wanted` adds for it."""
    out = []
    for direction, rules in (("ingress", pod.ingress), ("egress", pod.egress)):
        if rules is None:
            continue
        chain = f"pol-{'in' if direction == 'ingress' else 'out'}-{pod.chain_id}"
        lines = [line for rule in rules for line in _rule_lines(rule, direction)]
        out.append((MAPS[direction], chain, [*dict.fromkeys(lines), "drop"]))
    return out


def assemble(pods: Iterable[tuple[str, list[tuple[str, str, list[str]]]]]) -> Wanted:
    """The Wanted state from (pod ip, that pod's :func:`pod_chains`) pairs."""
    out = Wanted()
    for ip, chains in pods:
        for m, chain, lines in chains:
            out.chains[chain] = lines
            out.elements[m][ip] = chain
    return out


def wanted(pods: Iterable[PodRules]) -> Wanted:
    return assemble((pod.ip, pod_chains(pod)) for pod in pods)


def base_objects() -> list[str]:
    """The table, maps and hook chain, created idempotently (``add`` never fails on existing)."""
    maps = [f"add map {TABLE} {m} {{ type ipv4_addr : verdict ; }}" for m in MAPS.values()]
    return [
        f"add table {TABLE}",
        *maps,
        f"add chain {TABLE} {BASE} {{ type filter hook forward priority filter ; policy accept ; }}",
        f"flush chain {TABLE} {BASE}",
        f"add rule {TABLE} {BASE} ct state established,related accept",
        f"add rule {TABLE} {BASE} ip daddr vmap @{MAPS['ingress']}",
        f"add rule {TABLE} {BASE} ip saddr vmap @{MAPS['egress']}",
    ]


def transaction(old: Wanted, new: Wanted) -> list[str]:
    """The commands that turn ``old`` (what the kernel has) into ``new``; [] when equal.

    Map elements go first (nothing may jump to a chain being deleted), then chains change,
    then the new elements point at chains that exist."""
    cmds: list[str] = []
    for m in MAPS.values():
        before, after = old.elements[m], new.elements[m]
        gone = [ip for ip, chain in before.items() if after.get(ip) != chain]
        if gone:
            cmds.append(f"delete element {TABLE} {m} {{ {', '.join(sorted(gone))} }}")
    for chain in sorted(set(old.chains) - set(new.chains)):
        cmds += [f"flush chain {TABLE} {chain}", f"delete chain {TABLE} {chain}"]
    for chain, lines in sorted(new.chains.items()):
        if old.chains.get(chain) == lines:
            continue
        cmds += [f"add chain {TABLE} {chain}", f"flush chain {TABLE} {chain}"]
        cmds += [f"add rule {TABLE} {chain} {line}" for line in lines]
    for m in MAPS.values():
        before, after = old.elements[m], new.elements[m]
        added = [f"{ip} : jump {chain}" for ip, chain in sorted(after.items()) if before.get(ip) != chain]
        if added:
            cmds.append(f"add element {TABLE} {m} {{ {', '.join(added)} }}")
    return cmds


def teardown() -> list[str]:
    """Remove the policy table (``add`` first, so that removing an absent table is no error)."""
    return [f"add table {TABLE}", f"delete table {TABLE}"]
