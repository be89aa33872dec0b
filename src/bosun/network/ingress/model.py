"""From Ingresses, Services and TLS certificates to the routes nginx serves: pure, so each
rule of precedence is a small test.

Kubernetes' rules, as nginx locations:

- a host's paths: ``Exact`` is ``location = /p``; ``Prefix`` matches whole path elements
  (``/foo`` matches ``/foo`` and ``/foo/bar``, never ``/foobar``; a trailing ``/`` is
  ignored), so it is ``location = /foo`` plus ``location ^~ /foo/``; nginx then picks the
  longest prefix, with an exact match first: Kubernetes' "longest path wins, Exact before
  Prefix". ``ImplementationSpecific`` is nginx's own prefix match (``^~ /p``), as ingress-nginx.
- hosts: exact names before ``*.wildcards`` (one DNS label, as Kubernetes says: a regex name,
  which nginx tries after exact ones); rules without a host go to the default server.
- two Ingresses claiming the same host and path: the older one wins (ingress-nginx's rule)
  and the newer gets a ``RuleConflict`` event.
- ``use-regex`` (or a ``rewrite-target`` with ``$1``-style captures) makes every path of that
  host a regular expression tried longest first, as ingress-nginx does.

Backends are Service cluster IPs (the node's service proxy balances over the endpoints), so
scaling a Deployment changes nothing here; a missing Service, port or cluster IP answers 503
with an event, and harms no other route.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bosun.network.ingress.annotations import Options, parse_annotations

Obj = dict[str, Any]
DEFAULT_SERVER = ""
SECRET_NOT_FOUND = "not found"  # Cert.error of a Secret that does not exist


@dataclass(frozen=True)
class Upstream:
    name: str
    address: str
    port: int
    protocol: str = "http"  # "http" or "https" (backend-protocol)


@dataclass
class Location:
    modifier: str  # "=", "^~" or "~*"
    path: str  # what nginx matches (a regular expression for "~*")
    origin: str  # the Ingress (namespace/name) this route came from
    upstream: Upstream | None  # None: nothing to send it to (503)
    options: Options
    rank: tuple[int, int] = (0, 0)  # lower wins a clash: (kind of match, Ingress age)
    rewrite: tuple[str, str] | None = None  # (regex, replacement) of nginx's rewrite


@dataclass
class Server:
    host: str  # DEFAULT_SERVER for the catch-all
    locations: dict[tuple[str, str], Location] = field(default_factory=dict)
    cert: str = ""  # path of the PEM (certificate chain and key); "" no TLS
    cert_origin: str = ""
    regex: bool = False


@dataclass(frozen=True)
class Problem:
    ingress: str  # namespace/name
    type: str  # "Warning" or "Normal"
    reason: str
    message: str


@dataclass
class Routes:
    servers: dict[str, Server] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    ingresses: dict[str, Obj] = field(default_factory=dict)  # the Ingresses used, by key


@dataclass(frozen=True)
class Cert:
    """A TLS Secret as the renderer may use it: the PEM file to serve (the last good one
    when the Secret is broken now) and what is wrong with the Secret, if anything."""

    path: str = ""
    error: str = ""


ServiceLookup = Callable[[str, str], Obj | None]
CertLookup = Callable[[str, str], Cert]


def ingress_key(ing: Obj) -> str:
    m = ing.get("metadata") or {}
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def age_order(ingresses: Iterable[Obj]) -> list[Obj]:
    """Oldest first (creationTimestamp, then namespace/name): who wins a clash."""
    return sorted(ingresses, key=lambda i: ((i.get("metadata") or {}).get("creationTimestamp") or "",
                                            ingress_key(i)))


def wildcard_regex(host: str) -> str:
    """``*.example.com`` as nginx's regex server name: exactly one label in place of ``*``."""
    return "~^[^.]+" + re.escape(host[1:]) + "$"


def host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and "." + rest == pattern[1:]
    return pattern == host


class _Builder:
    def __init__(self, services: ServiceLookup, certs: CertLookup) -> None:
        self.services = services
        self.certs = certs
        self.routes = Routes()
        self._upstreams: dict[tuple[str, str, str], Upstream | tuple[str, str]] = {}

    def problem(self, ing: Obj, reason: str, message: str, type_: str = "Warning") -> None:
        self.routes.problems.append(Problem(ingress_key(ing), type_, reason, message))

    def server(self, host: str) -> Server:
        server = self.routes.servers.get(host)
        if server is None:
            server = self.routes.servers[host] = Server(host)
        return server

    def upstream(self, ing: Obj, backend: Obj, options: Options) -> Upstream | None:
        """The Service a backend names, once per distinct backend (an Ingress per host
        often names the same Service)."""
        ns = (ing.get("metadata") or {}).get("namespace") or ""
        ref = backend.get("service")
        key = (ns, repr(ref), options.protocol)
        if key not in self._upstreams:
            self._upstreams[key] = self._upstream(ing, backend, options)
        found = self._upstreams[key]
        if isinstance(found, Upstream):
            return found
        self.problem(ing, *found)
        return None

    def _upstream(self, ing: Obj, backend: Obj, options: Options) -> Upstream | tuple[str, str]:
        """The Upstream, or (reason, message) of why the route answers 503."""
        ns = (ing.get("metadata") or {}).get("namespace") or ""
        ref = backend.get("service")
        if not isinstance(ref, dict):
            return "UnsupportedBackend", "only Service backends are supported; the route answers 503"
        name = str(ref.get("name") or "")
        port = ref.get("port") or {}
        svc = self.services(ns, name)
        if svc is None:
            return "ServiceNotFound", f"Service {ns}/{name} not found; its routes answer 503"
        spec = svc.get("spec") or {}
        ip = str(spec.get("clusterIP") or "")
        if not ip or ip == "None" or spec.get("type") == "ExternalName":
            return ("ServiceWithoutClusterIP",
                    f"Service {ns}/{name} has no cluster IP (headless or ExternalName); its routes answer 503")
        number = port.get("number")
        if number and not any(p.get("port") == number for p in spec.get("ports") or []):
            return "ServicePortNotFound", f"Service {ns}/{name} has no port {number}; its routes answer 503"
        if not number:
            wanted = port.get("name")
            number = next((p.get("port") for p in spec.get("ports") or [] if p.get("name") == wanted), None)
            if not number:
                return "ServicePortNotFound", f"Service {ns}/{name} has no port named {wanted!r}; its routes answer 503"
        label = re.sub(r"[^A-Za-z0-9_]", "_", f"{ns}_{name}_{number}_{options.protocol}")
        return Upstream(label, ip, int(number), options.protocol)

    def place(self, server: Server, loc: Location, ing: Obj, what: str) -> None:
        key = (loc.modifier, loc.path)
        have = server.locations.get(key)
        if have is None or loc.rank < have.rank:
            server.locations[key] = loc
        elif loc.rank[0] == have.rank[0] and have.origin != loc.origin:
            self.problem(ing, "RuleConflict", f"{what} is already routed by the older Ingress {have.origin}; "
                         "this rule is ignored")


def _paths(ptype: str, path: str) -> list[tuple[str, str, int]]:
    """(modifier, nginx path, kind rank) of one Ingress path outside regex mode."""
    if ptype == "Exact":
        return [("=", path, 0)]
    if ptype == "Prefix":
        base = path.rstrip("/")
        if not base:
            return [("^~", "/", 0)]
        return [("=", base, 1), ("^~", base + "/", 0)]
    return [("^~", path or "/", 0)]


def _regex_path(ptype: str, path: str) -> tuple[str, str, int]:
    if ptype == "Exact":
        return ("=", path, 0)
    if ptype == "Prefix":
        return ("~*", "^" + re.escape(path.rstrip("/")) + "(/|$)", 0)
    return ("~*", "^" + (path or "/"), 0)


def _rewrite(modifier: str, path: str, target: str) -> tuple[str, str]:
    """ingress-nginx's rewrite-target: with captures, the path is the regex and the target its
    replacement; without, the matched path is replaced by the target (``/api/x`` -> ``/x``
    for path ``/api`` and target ``/``)."""
    if "$" in target:
        return ("(?i)" + (path if modifier == "~*" else "^" + re.escape(path)), target)
    base = path.rstrip("/") if modifier != "~*" else path.removesuffix("(/|$)")
    prefix = base if modifier == "~*" else "^" + re.escape(base)
    return (prefix + "/?(.*)$", target.rstrip("/") + "/$1")


def build(ingresses: Iterable[Obj], services: ServiceLookup, certs: CertLookup) -> Routes:
    """The routes of ``ingresses`` (all of them ours): servers by host, problems to report."""
    b = _Builder(services, certs)
    ordered = age_order(ingresses)
    parsed = {ingress_key(i): parse_annotations(i) for i in ordered}
    for ing in ordered:
        key = ingress_key(ing)
        b.routes.ingresses[key] = ing
        for reason, message in parsed[key][1]:
            b.problem(ing, reason, message)
    # Which hosts are in regex mode: any Ingress on them asks for it.
    regex_hosts: set[str] = set()
    for ing in ordered:
        if parsed[ingress_key(ing)][0].regex:
            regex_hosts |= {str(r.get("host") or "") for r in (ing.get("spec") or {}).get("rules") or []}
    defaults: list[tuple[Obj, Location]] = []
    for age, ing in enumerate(ordered):
        key = ingress_key(ing)
        options = parsed[key][0]
        spec = ing.get("spec") or {}
        for rule in spec.get("rules") or []:
            host = str(rule.get("host") or "")
            server = b.server(host)
            server.regex = host in regex_hosts
            for hp in (rule.get("http") or {}).get("paths") or []:
                ptype, path = str(hp.get("pathType") or ""), str(hp.get("path") or "")
                upstream = b.upstream(ing, hp.get("backend") or {}, options)
                wanted = [_regex_path(ptype, path)] if server.regex and ptype != "Exact" else _paths(ptype, path)
                for modifier, npath, rank in wanted:
                    loc = Location(modifier, npath, key, upstream, options, (rank, age))
                    if options.rewrite_target:
                        loc.rewrite = _rewrite(modifier, npath, options.rewrite_target)
                    b.place(server, loc, ing, f"{host or '*'}{path} ({ptype})")
        default = spec.get("defaultBackend")
        if isinstance(default, dict):
            upstream = b.upstream(ing, default, options)
            loc = Location("^~", "/", key, upstream, options, (1, age))
            defaults.append((ing, loc))
    # A defaultBackend answers what its Ingress's hosts (and, from the oldest such Ingress,
    # every unknown host) do not route otherwise.
    for ing, loc in defaults:
        hosts = {str(r.get("host") or "") for r in (ing.get("spec") or {}).get("rules") or []} | {DEFAULT_SERVER}
        for host in sorted(hosts):
            b.server(host).locations.setdefault(("^~", "/"), loc)
    b.server(DEFAULT_SERVER)
    _tls(b, ordered)
    return b.routes


def _tls(b: _Builder, ordered: list[Obj]) -> None:
    """Each host's certificate: the first TLS entry (oldest Ingress first) naming it."""
    for ing in ordered:
        spec = ing.get("spec") or {}
        ns = (ing.get("metadata") or {}).get("namespace") or ""
        rule_hosts = [str(r.get("host") or "") for r in spec.get("rules") or [] if r.get("host")]
        for entry in spec.get("tls") or []:
            secret = str(entry.get("secretName") or "")
            patterns = [str(h) for h in entry.get("hosts") or []] or rule_hosts
            if not secret:
                continue
            cert = b.certs(ns, secret)
            if cert.error:
                kept = " (the certificate served before is kept)" if cert.path else ""
                reason = "SecretNotFound" if cert.error == SECRET_NOT_FOUND else "InvalidTLSSecret"
                b.problem(ing, reason, f"TLS Secret {ns}/{secret}: {cert.error}{kept}")
            if not cert.path:
                continue
            for host, server in b.routes.servers.items():
                if host and not server.cert and any(host_matches(p, host) for p in patterns):
                    server.cert, server.cert_origin = cert.path, ingress_key(ing)
