"""NetworkPolicy (networking.k8s.io/v1), with Kubernetes 1.32's field paths and messages.

The networking helpers compile these objects into packet filters: anything they would have
to guess about (a CIDR that does not parse, an ``except`` outside its block, a port range
upside down) is refused here with 422, as kube-apiserver does, rather than at the node.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from bosun.api.errors import forbidden, invalid, not_supported, required
from bosun.api.validation.fields import Checker, GoPolicyTypes, child, index
from bosun.api.validation.meta import (
    dns1123_subdomain,
    port_name,
    validate_label_selector,
    validate_object_meta,
)

PROTOCOLS = ["TCP", "UDP", "SCTP"]
POLICY_TYPES = ["Ingress", "Egress"]
_PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(value: str) -> Network | None:
    """A CIDR as Go's net.ParseCIDR reads it: host bits may be set ("10.1.2.3/8")."""
    if "/" not in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _port(c: Checker, port: dict[str, Any], path: str) -> None:
    proto = port.get("protocol")
    if proto is not None and proto not in PROTOCOLS:
        c.add(not_supported(child(path, "protocol"), proto, PROTOCOLS))
    value = port.get("port")
    end = c.integer(port, "endPort", child(path, "endPort"))
    if value is None:
        if end is not None:
            c.add(invalid(child(path, "endPort"), end, "may not be specified when `port` is not specified"))
        return
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 65535:
            c.add(invalid(child(path, "port"), value, _PORT_RANGE_MSG))
        if end is not None:
            if end < value:
                c.add(invalid(child(path, "endPort"), value, "must be greater than or equal to `port`"))
            if not 1 <= end <= 65535:
                c.add(invalid(child(path, "endPort"), end, _PORT_RANGE_MSG))
    elif isinstance(value, str):
        if end is not None:
            c.add(invalid(child(path, "endPort"), end, "may not be specified when `port` is non-numeric"))
        for msg in port_name(value):
            c.add(invalid(child(path, "port"), value, msg))


def _ip_block(c: Checker, block: dict[str, Any], path: str) -> None:
    cidr_path = child(path, "cidr")
    cidr = c.text(block, "cidr", cidr_path)
    if not cidr:
        c.add(required(cidr_path))
        return
    net = parse_cidr(cidr)
    if net is None:
        c.add(invalid(cidr_path, cidr, "not a valid CIDR"))
        return
    except_path = child(path, "except")
    for i, text in enumerate(c.strings(block, "except", except_path)):
        p = index(except_path, i)
        inner = parse_cidr(text)
        if inner is None:
            c.add(invalid(p, text, "not a valid CIDR"))
            return
        # Go's check: the except block's address inside cidr and its prefix strictly longer.
        if (inner.version != net.version or inner.network_address not in net
                or net.prefixlen >= inner.prefixlen):
            c.add(invalid(p, text, "must be a strict subset of `cidr`"))


def _peer(c: Checker, peer: dict[str, Any], path: str) -> None:
    count = 0
    for name in ("podSelector", "namespaceSelector"):
        sel = c.obj(peer, name, child(path, name))
        if sel is not None:
            count += 1
            validate_label_selector(c, sel, child(path, name))
    block = c.obj(peer, "ipBlock", child(path, "ipBlock"))
    if block is not None:
        count += 1
        _ip_block(c, block, child(path, "ipBlock"))
    if count == 0:
        c.add(required(path, "must specify a peer"))
    elif count > 1 and block is not None:
        c.add(forbidden(path, "may not specify both ipBlock and another peer"))


def _rules(c: Checker, spec: dict[str, Any], direction: str, peers: str) -> None:
    base = child("spec", direction)
    for i, rule in c.objects(spec, direction, base):
        rp = index(base, i)
        ports_path = child(rp, "ports")
        peers_path = child(rp, peers)
        # Upstream checks ingress ports before peers and egress peers before ports.
        order = ("ports", peers) if direction == "ingress" else (peers, "ports")
        for part in order:
            if part == "ports":
                for j, port in c.objects(rule, "ports", ports_path):
                    _port(c, port, index(ports_path, j))
            else:
                for j, peer in c.objects(rule, peers, peers_path):
                    _peer(c, peer, index(peers_path, j))


def validate_network_policy(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    selector = c.obj(spec, "podSelector", "spec.podSelector")
    if selector is not None:
        validate_label_selector(c, selector, "spec.podSelector")
    _rules(c, spec, "ingress", "from")
    _rules(c, spec, "egress", "to")
    types = c.strings(spec, "policyTypes", "spec.policyTypes")
    if len(types) > len(POLICY_TYPES):
        c.add(invalid("spec.policyTypes", GoPolicyTypes(types), "may not specify more than two policyTypes"))
        return
    for i, t in enumerate(types):
        if t not in POLICY_TYPES:
            c.add(not_supported(index("spec.policyTypes", i), t, POLICY_TYPES))
