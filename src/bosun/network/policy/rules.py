"""Which traffic each of this node's pods may receive and send, as plain data.

Kubernetes' semantics: a pod selected by at least one policy of a direction is isolated in
that direction, and then only what some rule of those policies allows gets through
(rules add up, order never matters). Peers are resolved to addresses here, named ports to
numbers, so the rendering never needs the API objects. A pod that no policy selects gets
nothing at all (no chain, no lookup cost).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bosun.api.selectors import LabelSelector, SelectorError, label_selector_from_dict

Obj = dict[str, Any]
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, order=True)
class Ports:
    """One protocol and a port range; ``first == 0`` means every port of the protocol."""

    protocol: str  # "tcp" | "udp" | "sctp"
    first: int = 0
    last: int = 0


@dataclass(frozen=True)
class Rule:
    """Traffic from (ingress) or to (egress) ``peers`` on ``ports``.

    ``peers`` None: any address. ``blocks``: CIDRs with their exceptions. ``ports`` empty:
    every port and protocol. ``per_peer`` holds named ports, which resolve differently on
    each destination pod (egress): ``(pod ip, Ports)``."""

    peers: frozenset[str] | None
    blocks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ports: tuple[Ports, ...] = ()
    per_peer: tuple[tuple[str, Ports], ...] = ()


@dataclass(frozen=True)
class PodRules:
    """A local pod's allowed traffic: None = not isolated in that direction."""

    uid: str
    ip: str
    ingress: tuple[Rule, ...] | None
    egress: tuple[Rule, ...] | None

    @property
    def chain_id(self) -> str:
        return hashlib.sha256(self.uid.encode()).hexdigest()[:12]


def pod_ip(pod: Obj) -> str:
    """The pod's address when it has one of its own (not the node's, not finished)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return ""
    return str(status.get("podIP") or "")


def _labels(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _selector(sel: Obj | None) -> LabelSelector | None:
    try:
        return label_selector_from_dict(sel)
    except SelectorError:
        return None  # the API validates selectors; an unreadable one selects nothing


class Cluster:
    """The pods (with addresses) and namespaces a policy's peers may name."""

    def __init__(self, pods: Iterable[Obj], namespaces: Iterable[Obj]) -> None:
        self.pods = [p for p in pods if pod_ip(p)]
        self.namespace_labels = {str(n["metadata"]["name"]): _labels(n) for n in namespaces}

    def namespaces(self, selector: Obj | None, own: str) -> list[str]:
        if selector is None:
            return [own]
        sel = _selector(selector)
        return [ns for ns, labels in self.namespace_labels.items() if sel is not None and sel.matches(labels)]

    def select(self, namespaces: list[str], selector: Obj | None) -> list[Obj]:
        sel = _selector(selector if selector is not None else {})
        wanted = set(namespaces)
        return [p for p in self.pods
                if p["metadata"].get("namespace") in wanted and sel is not None and sel.matches(_labels(p))]


def policy_types(policy: Obj) -> list[str]:
    """spec.policyTypes, or what upstream infers when it is missing."""
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return [str(t) for t in spec["policyTypes"]]
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def selects(policy: Obj, pod: Obj) -> bool:
    if policy["metadata"].get("namespace") != pod["metadata"].get("namespace"):
        return False
    sel = _selector((policy.get("spec") or {}).get("podSelector") or {})
    return sel is not None and sel.matches(_labels(pod))


def _port_of(pod: Obj, name: str, protocol: str) -> int:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name and str(p.get("protocol") or "TCP").upper() == protocol:
                return int(p.get("containerPort") or 0)
    return 0


def _ports(entries: list[Obj], target: Obj | None) -> tuple[tuple[Ports, ...], tuple[str, ...]]:
    """Numeric ports, and the names of named ports (resolved on ``target`` when given)."""
    out: list[Ports] = []
    named: list[str] = []
    for e in entries:
        proto = str(e.get("protocol") or "TCP").upper()
        port = e.get("port")
        if isinstance(port, str) and not port.isdigit():
            if target is None:
                named.append(f"{proto}/{port}")
                continue
            number = _port_of(target, port, proto)
            if number:
                out.append(Ports(proto.lower(), number, number))
            continue
        if port is None:
            out.append(Ports(proto.lower()))
        else:
            first = int(port)
            out.append(Ports(proto.lower(), first, int(e.get("endPort") or first)))
    return tuple(sorted(set(out))), tuple(named)


@dataclass(frozen=True)
class PeerSet:
    """What one rule's ``from``/``to`` resolves to, before ports: the same for every pod the
    policy selects, so it is resolved once per rule, not once per selected pod.

    ``any``: no peers named (any address). ``members``: (ip, named ports) of the peer pods,
    what a rule built from this set can depend on; ``pods`` holds the objects themselves and
    takes no part in equality."""

    any: bool
    ips: frozenset[str] = frozenset()
    blocks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    members: tuple[tuple[str, tuple[tuple[str, str, int], ...]], ...] = ()
    pods: tuple[Obj, ...] = field(default=(), compare=False, hash=False)


def named_ports(pod: Obj) -> tuple[tuple[str, str, int], ...]:
    """The pod's named container ports as (name, protocol, number): what a named port in a
    policy resolves against."""
    return tuple((str(p.get("name")), str(p.get("protocol") or "TCP").upper(), int(p.get("containerPort") or 0))
                 for c in (pod.get("spec") or {}).get("containers") or []
                 for p in c.get("ports") or [] if p.get("name"))


def resolve_peers(peers: list[Obj] | None, policy_ns: str, cluster: Cluster) -> PeerSet:
    """The addresses and pods a rule's peers name in ``cluster``."""
    if not peers:
        pods: list[Obj] = list(cluster.pods)
        return PeerSet(any=True, members=tuple(sorted((pod_ip(p), named_ports(p)) for p in pods)), pods=tuple(pods))
    pods = []
    blocks: list[tuple[str, tuple[str, ...]]] = []
    for peer in peers:
        block = peer.get("ipBlock")
        if block:
            cidr = str(ipaddress.ip_network(str(block.get("cidr")), strict=False))
            excepts = tuple(str(ipaddress.ip_network(str(x), strict=False)) for x in block.get("except") or [])
            blocks.append((cidr, excepts))
            continue
        namespaces = cluster.namespaces(peer.get("namespaceSelector"), policy_ns)
        pods += cluster.select(namespaces, peer.get("podSelector"))
    return PeerSet(any=False, ips=frozenset(pod_ip(p) for p in pods), blocks=tuple(sorted(blocks)),
                   members=tuple(sorted({(pod_ip(p), named_ports(p)) for p in pods})), pods=tuple(pods))


def rule_for(peer_set: PeerSet, port_entries: list[Obj], target: Obj, ingress: bool) -> Rule | None:
    """One ingress/egress rule of a policy, for one selected pod; None when it can match nothing."""
    ports, named = _ports(port_entries, target if ingress else None)
    if port_entries and not ports and not named:
        return None  # only named ports, none of which the pod has
    if peer_set.any:
        if named:  # egress to any destination on a named port: it resolves on each pod
            per = _named_on(list(peer_set.pods), named)
            return Rule(peers=None, ports=ports, per_peer=per) if per or ports else None
        return Rule(peers=None, ports=ports)
    per = _named_on(list(peer_set.pods), named) if named else ()
    if not peer_set.ips and not peer_set.blocks:
        return None
    return Rule(peers=peer_set.ips, blocks=peer_set.blocks, ports=ports, per_peer=per)


def _peer_rule(peers: list[Obj] | None, port_entries: list[Obj], policy_ns: str, cluster: Cluster,
               target: Obj, ingress: bool) -> Rule | None:
    return rule_for(resolve_peers(peers, policy_ns, cluster), port_entries, target, ingress)


def _named_on(pods: list[Obj], named: tuple[str, ...]) -> tuple[tuple[str, Ports], ...]:
    out = set()
    for pod in pods:
        for entry in named:
            proto, _, name = entry.partition("/")
            number = _port_of(pod, name, proto)
            if number:
                out.add((pod_ip(pod), Ports(proto.lower(), number, number)))
    return tuple(sorted(out))


def pod_rules(local_pods: Iterable[Obj], all_pods: Iterable[Obj], namespaces: Iterable[Obj],
              policies: Iterable[Obj]) -> list[PodRules]:
    """What each local pod that some policy selects may receive and send."""
    cluster = Cluster(all_pods, namespaces)
    policies = list(policies)
    out = []
    for pod in local_pods:
        ip = pod_ip(pod)
        if not ip:
            continue
        ingress: list[Rule] | None = None
        egress: list[Rule] | None = None
        for policy in policies:
            if not selects(policy, pod):
                continue
            spec, ns = policy.get("spec") or {}, str(policy["metadata"].get("namespace"))
            types = policy_types(policy)
            if "Ingress" in types:
                ingress = ingress or []
                for r in spec.get("ingress") or []:
                    rule = _peer_rule(r.get("from"), r.get("ports") or [], ns, cluster, pod, True)
                    if rule is not None:
                        ingress.append(rule)
            if "Egress" in types:
                egress = egress or []
                for r in spec.get("egress") or []:
                    rule = _peer_rule(r.get("to"), r.get("ports") or [], ns, cluster, pod, False)
                    if rule is not None:
                        egress.append(rule)
        if ingress is not None or egress is not None:
            out.append(PodRules(str(pod["metadata"]["uid"]), ip,
                                None if ingress is None else tuple(ingress),
                                None if egress is None else tuple(egress)))
    return out
