"""The cluster's DNS records, answered from the node's informer caches (no I/O here).

The names and their meaning follow Kubernetes' DNS specification (the records CoreDNS's
``kubernetes`` plugin serves with ``pods insecure``), so that what works against a
Kubernetes cluster's resolver works here:

- ``SVC.NS.svc.DOMAIN``: A = the cluster IP; for a headless Service (``clusterIP: None``)
  the addresses of its ready endpoints, read from its EndpointSlices; an ExternalName
  Service is a CNAME to its external name.
- ``_PORT._PROTO.SVC.NS.svc.DOMAIN``: SRV for each named port (target: the Service, or each
  ready endpoint of a headless one), with the targets' addresses as additional records.
- ``HOST.SVC.NS.svc.DOMAIN``: an endpoint of a headless Service by its hostname (a StatefulSet
  pod, or a pod's ``hostname`` + ``subdomain``), or by its dashed address (``10-244-1-5``).
- ``A-B-C-D.NS.pod.DOMAIN``: the address written in the name, when in the cluster CIDR.
- PTR for cluster IPs (the Service's name) and for endpoint addresses (the endpoint's
  name); a pod address behind no Service has no name (its namespace is not in the caches).
- Unknown names in the cluster domain are NXDOMAIN, names that exist but have no record of
  the asked type (AAAA: the cluster is IPv4) are NOERROR with no answer; both carry the SOA.
- Everything else is not ours: :meth:`Records.lookup` returns None and the caller forwards.

Lookups lower-case the name (DNS is case-insensitive); the caller answers with the question's
own spelling.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]

TTL = 5
"""Seconds a cluster answer may be cached (CoreDNS's default): short, since Services move."""
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
MAX_CNAME_HOPS = 8  # ExternalName Services naming each other in a loop stop here
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# Index names on the shared informers (prefixed: other node components share them).
SERVICE_IP_INDEX = "dns-service-ip"
SERVICE_NS_INDEX = "dns-service-namespace"
SLICE_SERVICE_INDEX = "dns-slice-service"
SLICE_IP_INDEX = "dns-slice-address"


def service_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if ip and ip != "None"]


def service_namespace(svc: Obj) -> list[str]:
    return [str((svc.get("metadata") or {}).get("namespace") or "")]


def slice_service(sl: Obj) -> list[str]:
    meta = sl.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace')}/{name}"] if name else []


def slice_addresses(sl: Obj) -> list[str]:
    return [a for ep in sl.get("endpoints") or [] for a in ep.get("addresses") or []]


SERVICE_INDEXES = {SERVICE_IP_INDEX: service_ips, SERVICE_NS_INDEX: service_namespace}
SLICE_INDEXES = {SLICE_SERVICE_INDEX: slice_service, SLICE_IP_INDEX: slice_addresses}


class Store(Protocol):
    """What is read of an informer's cache (an :class:`~bosun.client.informer.Informer`
    with the indexes above)."""

    def get(self, namespace: str | None, name: str) -> Obj | None: ...

    def by_index(self, name: str, value: str) -> list[Obj]: ...


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True)
class Record:
    name: str  # absolute, lower case, with the trailing dot
    type: str  # A, AAAA, CNAME, PTR, SRV, SOA
    data: str | Srv  # an address or a name; Srv for SRV; the SOA's MNAME for SOA
    ttl: int = TTL


@dataclass
class Answer:
    rcode: int = NOERROR
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    # An ExternalName's target outside the cluster domain: the caller resolves it upstream
    # and appends what it finds after the CNAME (as CoreDNS does: stub resolvers do not chase).
    chase: str = ""


@dataclass(frozen=True)
class _Endpoint:
    name: str  # first label: the hostname, or the dashed address
    address: str
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, port) of its slice


class Records:
    def __init__(self, services: Store, slices: Store, *, domain: str, service_cidr: str,
                 cluster_cidr: str) -> None:
        self.services = services
        self.slices = slices
        self.domain = domain.strip(".").lower()
        self._suffix = "." + self.domain
        self.service_cidr = ipaddress.ip_network(service_cidr)
        self.cluster_cidr = ipaddress.ip_network(cluster_cidr)
        self.soa = Record(self.domain + ".", "SOA", f"ns.dns.{self.domain}.")
        self.reverse_soa = Record("in-addr.arpa.", "SOA", f"ns.dns.{self.domain}.")

    def lookup(self, qname: str, qtype: str) -> Answer | None:
        """The answer for ``qname`` (any case, with or without the final dot), or None when
        the name is outside the zones this node is the authority for."""
        return self._lookup(qname.lower().rstrip("."), qtype, 0)

    def _lookup(self, name: str, qtype: str, hops: int) -> Answer | None:
        if name == self.domain or name.endswith(self._suffix):
            labels = name[: len(name) - len(self.domain)].rstrip(".").split(".") if name != self.domain else []
            return self._cluster(labels, qtype, hops)
        if name.endswith(".in-addr.arpa"):
            return self._reverse(name, qtype)
        return None

    # -- the cluster domain ------------------------------------------------------------------

    def _cluster(self, labels: list[str], qtype: str, hops: int) -> Answer:
        if not labels:
            return Answer(answer=[self.soa]) if qtype == "SOA" else self._nodata()
        kind, rest = labels[-1], labels[:-1]
        if kind == "svc":
            return self._svc(rest, qtype, hops)
        if kind == "pod" and len(rest) == 2:
            return self._pod(rest[0], rest[1], qtype)
        if kind == "pod" and not rest:
            return self._nodata()
        return self._nxdomain()

    def _svc(self, rest: list[str], qtype: str, hops: int) -> Answer:
        if not rest:
            return self._nodata()
        if len(rest) == 1:  # NS.svc.DOMAIN: an empty non-terminal while the namespace has Services
            return self._nodata() if self.services.by_index(SERVICE_NS_INDEX, rest[0]) else self._nxdomain()
        svc = self.services.get(rest[-1], rest[-2])
        if svc is None:
            return self._nxdomain()
        fqdn = f"{rest[-2]}.{rest[-1]}.svc.{self.domain}."
        if len(rest) == 2:
            return self._service(svc, fqdn, qtype, hops)
        if len(rest) == 3 and rest[0].startswith("_"):  # _PROTO.SVC...: exists if a port speaks it
            ports = self._ports(svc, rest[-1], rest[-2])
            return self._nodata() if any(p[1] == rest[0][1:] for p in ports) else self._nxdomain()
        if len(rest) == 3 and _headless(svc):
            eps = [e for e in self._endpoints(rest[-1], rest[-2]) if e.name == rest[0]]
            if not eps:
                return self._nxdomain()
            name = f"{rest[0]}.{fqdn}"
            return self._addresses(name, [e.address for e in eps], qtype)
        if len(rest) == 4 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv(svc, fqdn, rest[0][1:], rest[1][1:], qtype)
        return self._nxdomain()

    def _service(self, svc: Obj, fqdn: str, qtype: str, hops: int) -> Answer:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").lower().rstrip(".")
            if not target:
                return self._nodata()
            out = Answer(answer=[Record(fqdn, "CNAME", target + ".")])
            if qtype != "CNAME" and hops < MAX_CNAME_HOPS:
                inner = self._lookup(target, qtype, hops + 1)
                if inner is None:
                    out.chase = target + "."
                else:
                    out.answer += inner.answer
                    out.additional += inner.additional
            return out
        if qtype == "SRV":
            return self._srv(svc, fqdn, "", "", qtype)
        meta = svc["metadata"]
        if _headless(svc):
            ips = sorted({e.address for e in self._endpoints(meta["namespace"], meta["name"])})
        else:
            ips = service_ips(svc)
        return self._addresses(fqdn, ips, qtype)

    def _srv(self, svc: Obj, fqdn: str, port: str, proto: str, qtype: str) -> Answer:
        """SRV for the named ports matching ``port``/``proto`` ("" matches every named port)."""
        meta = svc["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if qtype not in ("SRV", "ANY"):
            known = any((not port or p[0] == port) and (not proto or p[1] == proto) for p in self._ports(svc, ns, name))
            return self._nodata() if known else self._nxdomain()
        found: list[tuple[str, str, int]] = []  # (target, address, port)
        if _headless(svc):
            for ep in self._endpoints(ns, name):
                found += [(f"{ep.name}.{fqdn}", ep.address, p[2]) for p in ep.ports
                          if p[0] and (not port or p[0] == port) and (not proto or p[1] == proto)]
        else:
            ips = service_ips(svc)
            found += [(fqdn, ip, p[2]) for p in self._ports(svc, ns, name) for ip in ips[:1]
                      if p[0] and (not port or p[0] == port) and (not proto or p[1] == proto)]
        if not found:
            return self._nxdomain() if port else self._nodata()
        weight = max(1, 100 // len(found))
        out = Answer()
        for target, address, number in sorted(set(found)):
            out.answer.append(Record(fqdn if not port else f"_{port}._{proto}.{fqdn}", "SRV",
                                     Srv(0, weight, number, target)))
            rec = Record(target, "A", address)
            if rec not in out.additional:
                out.additional.append(rec)
        return out

    def _pod(self, dashed: str, namespace: str, qtype: str) -> Answer:
        ip = _undash(dashed)
        if ip is None or ip not in self.cluster_cidr:
            return self._nxdomain()
        return self._addresses(f"{dashed}.{namespace}.pod.{self.domain}.", [str(ip)], qtype)

    # -- reverse ----------------------------------------------------------------------------

    def _reverse(self, name: str, qtype: str) -> Answer | None:
        octets = name[: -len(".in-addr.arpa")].split(".")
        if len(octets) != 4:
            return None  # a zone cut or a partial name: the upstream's business
        try:
            ip = ipaddress.IPv4Address(".".join(reversed(octets)))
        except ValueError:
            return None
        if ip not in self.service_cidr and ip not in self.cluster_cidr:
            return None
        names = [f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.{self.domain}."
                 for s in self.services.by_index(SERVICE_IP_INDEX, str(ip))]
        for sl in self.slices.by_index(SLICE_IP_INDEX, str(ip)):
            for key in slice_service(sl):
                ns, svc = key.split("/", 1)
                names += [f"{e.name}.{svc}.{ns}.svc.{self.domain}." for e in _slice_endpoints(sl, ready_only=False)
                          if e.address == str(ip)]
        if not names:
            return Answer(rcode=NXDOMAIN, authority=[self.reverse_soa])
        if qtype not in ("PTR", "ANY"):
            return Answer(authority=[self.reverse_soa])
        return Answer(answer=[Record(name + ".", "PTR", n) for n in sorted(set(names))])

    # -- helpers ----------------------------------------------------------------------------

    def _endpoints(self, namespace: str, service: str) -> list[_Endpoint]:
        out: list[_Endpoint] = []
        for sl in self.slices.by_index(SLICE_SERVICE_INDEX, f"{namespace}/{service}"):
            out += _slice_endpoints(sl, ready_only=True)
        return out

    def _ports(self, svc: Obj, namespace: str, name: str) -> list[tuple[str, str, int]]:
        """(name, protocol, port) of the Service's ports, or for a headless one its endpoints'."""
        if _headless(svc):
            return [p for e in self._endpoints(namespace, name) for p in e.ports]
        return [(str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower(), int(p.get("port") or 0))
                for p in (svc.get("spec") or {}).get("ports") or []]

    def _addresses(self, name: str, ips: list[str], qtype: str) -> Answer:
        if qtype in ("A", "ANY") and ips:
            return Answer(answer=[Record(name, "A", ip) for ip in ips])
        return self._nodata()

    def _nodata(self) -> Answer:
        return Answer(authority=[self.soa])

    def _nxdomain(self) -> Answer:
        return Answer(rcode=NXDOMAIN, authority=[self.soa])


def _headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def _slice_endpoints(sl: Obj, *, ready_only: bool) -> list[_Endpoint]:
    if sl.get("addressType", "IPv4") != "IPv4":
        return []
    ports = tuple((str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower(), int(p.get("port") or 0))
                  for p in sl.get("ports") or [])
    out = []
    for ep in sl.get("endpoints") or []:
        if ready_only and (ep.get("conditions") or {}).get("ready") is False:
            continue  # unset means ready (EndpointSlice API)
        for address in ep.get("addresses") or []:
            label = str(ep.get("hostname") or "").lower() or address.replace(".", "-")
            out.append(_Endpoint(label, address, ports))
    return out


def _undash(label: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(label.replace("-", "."))
    except ValueError:
        return None
