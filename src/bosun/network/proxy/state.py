"""The rules the node should have, computed from Services and EndpointSlices as plain data.

Nothing here touches the kernel or the API: :func:`service_rules` turns one Service and its
slices into the chains, affinity sets and verdict-map elements it needs, and :func:`ruleset`
merges those into one :class:`Ruleset` (what :mod:`.diff` compares and :mod:`.apply` sends).
The proxy caches each Service's :class:`ServiceRules` and recomputes only the Services whose
objects changed, so a change to one of 5,000 Services costs one Service's worth of work.

The layout (the fixed part is in :mod:`.base`) follows kube-proxy's nftables mode:

- ``service-ips`` (address . protocol . port : verdict) sends a cluster IP to the Service
  port's ``svc-`` chain, and an external IP or load-balancer address to its ``ext-`` chain;
  ``service-nodeports`` (protocol . port) sends a NodePort on any local address to ``ext-``.
- ``svc-NS/NAME/PROTO/PORT`` picks a ready endpoint at random (``numgen``), or the one a client
  was pinned to (ClientIP affinity: a dynamic set per endpoint, refreshed on each new flow).
- ``ep-.../IP/PORT`` masquerades hairpin traffic (a pod reaching itself) and DNATs.
- ``ext-...``: ``Cluster`` marks for masquerade and goes to ``svc-``; ``Local`` keeps the
  client's address and picks among this node's endpoints only (drops when there are none),
  except for traffic from pods and from the node itself, which is served like cluster traffic.
- A Service port without ready endpoints gets no chains, only an entry in
  ``no-endpoint-services``/``no-endpoint-nodeports``: the filter chains reject its new
  connections at once (connection refused, not a hang).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
MASQ_CHAIN = "mark-for-masquerade"
REJECT_CHAIN = "reject-chain"
AFFINITY_SET = "{ type ipv4_addr; flags dynamic,timeout; }"
DEFAULT_AFFINITY_SECONDS = 10800
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class NodeView:
    """What of the node the per-Service rules depend on."""

    node_name: str
    cluster_cidr: str


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    local: bool


@dataclass
class ServiceRules:
    """What one Service adds to the table (all of its ports)."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    elements: dict[tuple[str, str], str] = field(default_factory=dict)
    # (endpoint ip, port) of UDP endpoints: conntrack entries of those that go are flushed.
    udp_endpoints: set[tuple[str, int]] = field(default_factory=set)


@dataclass
class Ruleset:
    """The whole per-Service part of the table, merged; compared by :func:`.diff.diff`."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    elements: dict[tuple[str, str], str] = field(default_factory=dict)
    udp_endpoints: set[tuple[str, int]] = field(default_factory=set)


def service_key(svc: Obj) -> str:
    m = svc.get("metadata") or {}
    return f"{m.get('namespace')}/{m.get('name')}"


def slice_service_key(slc: Obj) -> str | None:
    m = slc.get("metadata") or {}
    name = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{m.get('namespace')}/{name}" if name else None


def is_proxied(svc: Obj) -> bool:
    """Headless Services (DNS answers with pod addresses) and ExternalName ones get no rules."""
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    return spec.get("type") != "ExternalName" and bool(ip) and ip != "None"


def _ready(ep: Obj) -> bool:
    return (ep.get("conditions") or {}).get("ready") is not False


def _serving_terminating(ep: Obj) -> bool:
    c = ep.get("conditions") or {}
    return c.get("serving") is not False and bool(c.get("terminating"))


def endpoints_for(port: Obj, slices: Iterable[Obj], node_name: str) -> list[Endpoint]:
    """The endpoints that may take new connections for one Service port: the ready ones; when
    none is ready, the serving ones that are terminating (as kube-proxy, so a rolling update
    of the last pod does not refuse connections while its successor starts)."""
    name, proto = port.get("name") or "", port.get("protocol") or "TCP"
    ready: dict[tuple[str, int], Endpoint] = {}
    fallback: dict[tuple[str, int], Endpoint] = {}
    for slc in slices:
        if slc.get("addressType", "IPv4") != "IPv4":
            continue
        number = next((int(p["port"]) for p in slc.get("ports") or []
                       if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == proto
                       and p.get("port")), None)
        if number is None:
            continue
        for ep in slc.get("endpoints") or []:
            addrs = ep.get("addresses") or []
            if not addrs:
                continue
            e = Endpoint(str(addrs[0]), number, ep.get("nodeName") == node_name)
            if _ready(ep):
                ready[(e.ip, e.port)] = e
            elif _serving_terminating(ep):
                fallback[(e.ip, e.port)] = e
    chosen = ready or fallback
    return [chosen[k] for k in sorted(chosen)]


def affinity_seconds(svc: Obj) -> int:
    """0 without ClientIP affinity."""
    spec = svc.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    return int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)


def _balance(eps: list[Endpoint], ep_chains: Mapping[Endpoint, str], affinity: int) -> list[str]:
    """Rules picking one of ``eps``: a pinned client's endpoint first, else one at random."""
    if not eps:
        return ["drop"]
    rules = [f"ip saddr @{_aff(ep_chains[e])} goto {ep_chains[e]}" for e in eps] if affinity else []
    targets = ", ".join(f"{i} : goto {ep_chains[e]}" for i, e in enumerate(eps))
    rules.append(f"numgen random mod {len(eps)} vmap {{ {targets} }}")
    return rules


def _aff(ep_chain: str) -> str:
    return "aff" + ep_chain[2:]


def service_rules(svc: Obj, slices: Iterable[Obj], node: NodeView) -> ServiceRules:
    """Everything one Service needs on this node (see the module docstring for the layout)."""
    out = ServiceRules()
    if not is_proxied(svc):
        return out
    spec = svc.get("spec") or {}
    key = service_key(svc)
    slices = list(slices)
    vip = str(spec["clusterIP"])
    external = [str(ip) for ip in spec.get("externalIPs") or []]
    external += [str(i["ip"]) for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                 if i.get("ip")]
    local_only = spec.get("externalTrafficPolicy") == "Local"
    affinity = affinity_seconds(svc)
    for port in spec.get("ports") or []:
        proto = str(port.get("protocol") or "TCP").lower()
        number = int(port.get("port") or 0)
        node_port = int(port.get("nodePort") or 0) if spec.get("type") in ("NodePort", "LoadBalancer") else 0
        base = f"{key}/{proto}/{number}"
        eps = endpoints_for(port, slices, node.node_name)
        if not eps:
            for ip in [vip, *external]:
                out.elements[(NO_ENDPOINT_SERVICES, f"{ip} . {proto} . {number}")] = f"goto {REJECT_CHAIN}"
            if node_port:
                out.elements[(NO_ENDPOINT_NODEPORTS, f"{proto} . {node_port}")] = f"goto {REJECT_CHAIN}"
            continue
        svc_chain, ext_chain = f"svc-{base}", f"ext-{base}"
        ep_chains = {e: f"ep-{base}/{e.ip}/{e.port}" for e in eps}
        for e, chain in ep_chains.items():
            rules = [f"ip saddr {e.ip} jump {MASQ_CHAIN}"]
            if affinity:
                out.sets[_aff(chain)] = AFFINITY_SET
                rules.append(f"update @{_aff(chain)} {{ ip saddr timeout {affinity}s }}")
            rules.append(f"meta l4proto {proto} dnat to {e.ip}:{e.port}")
            out.chains[chain] = tuple(rules)
            if proto == "udp":
                out.udp_endpoints.add((e.ip, e.port))
        out.chains[svc_chain] = tuple(_balance(eps, ep_chains, affinity))
        out.elements[(SERVICE_IPS, f"{vip} . {proto} . {number}")] = f"goto {svc_chain}"
        if not external and not node_port:
            continue
        if local_only:
            # Pods and the node itself are served like cluster traffic (kube-proxy does the same):
            # only traffic from outside keeps its source and is limited to local endpoints.
            ext = [f"ip saddr {node.cluster_cidr} goto {svc_chain}",
                   f"fib saddr type local jump {MASQ_CHAIN}", f"fib saddr type local goto {svc_chain}",
                   *_balance([e for e in eps if e.local], ep_chains, affinity)]
        else:
            ext = [f"jump {MASQ_CHAIN}", f"goto {svc_chain}"]
        out.chains[ext_chain] = tuple(ext)
        for ip in external:
            out.elements[(SERVICE_IPS, f"{ip} . {proto} . {number}")] = f"goto {ext_chain}"
        if node_port:
            out.elements[(SERVICE_NODEPORTS, f"{proto} . {node_port}")] = f"goto {ext_chain}"
    return out


def ruleset(parts: Iterable[ServiceRules]) -> Ruleset:
    """Merge the Services' parts. When two Services claim one map key (two Services given the
    same external IP and port), the first keeps it: one bad Service must not fail the whole
    transaction. Pass the parts in a stable order (by Service key) for a stable winner."""
    out = Ruleset()
    for part in parts:
        out.chains.update(part.chains)
        out.sets.update(part.sets)
        for k, v in part.elements.items():
            out.elements.setdefault(k, v)
        out.udp_endpoints |= part.udp_endpoints
    return out
