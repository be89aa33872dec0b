"""A pod's resolv.conf, decided as the kubelet decides it (pkg/kubelet/network/dns).

``dnsPolicy``:
- ``ClusterFirst`` (the default): the node's cluster DNS server, the search path
  ``NS.svc.DOMAIN svc.DOMAIN DOMAIN`` followed by the node's own search domains, and
  ``options ndots:5``; a host-network pod gets the node's resolv.conf instead.
- ``ClusterFirstWithHostNet``: the same, also for host-network pods.
- ``Default``: the node's resolv.conf (nameservers, search, options).
- ``None``: nothing but the pod's ``dnsConfig``.
Then ``dnsConfig`` is appended: its nameservers and searches after the policy's (duplicates
dropped), its options overriding options of the same name. What the resolver would ignore
is cut as the kubelet cuts it: 3 nameservers, 32 search domains, 2048 characters of search.
Without a cluster DNS server (a node that runs no network parts) ClusterFirst is Default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bosun.agent.runtime.base import DNSConfig

Pod = dict[str, Any]
NDOTS = "ndots:5"
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
# The policies that use the cluster DNS server, for pods without and with the host's network.
CLUSTER_POLICIES = {False: ("ClusterFirst", "ClusterFirstWithHostNet"), True: ("ClusterFirstWithHostNet",)}


@dataclass(frozen=True)
class ClusterDNS:
    nameserver: str  # the node's DNS server: its pod bridge address
    domain: str  # the cluster domain, e.g. cluster.local


def parse_resolv_conf(text: str) -> DNSConfig:
    """The nameservers, search domains (the last ``search``/``domain`` line wins, as in
    glibc) and options of a resolv.conf."""
    out = DNSConfig()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        key, values = words[0], words[1:]
        if key == "nameserver":
            out.nameservers.append(values[0])
        elif key in ("search", "domain"):
            out.searches = list(values)
        elif key == "options":
            out.options = _merge_options(out.options, values)
    return out


def dns_config(pod: Pod, host: DNSConfig, cluster: ClusterDNS | None) -> DNSConfig:
    """The resolv.conf of ``pod`` on a node whose own is ``host``."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    if policy == "None":
        base = DNSConfig()
    elif cluster is not None and policy in CLUSTER_POLICIES[host_network]:
        d = cluster.domain.strip(".")
        base = DNSConfig(nameservers=[cluster.nameserver],
                         searches=_unique([f"{namespace}.svc.{d}", f"svc.{d}", d, *host.searches]),
                         options=[NDOTS])
    else:
        base = DNSConfig(list(host.nameservers), list(host.searches), list(host.options))
    extra = spec.get("dnsConfig") or {}
    options = [o["name"] + (f":{o['value']}" if o.get("value") not in (None, "") else "")
               for o in extra.get("options") or [] if o.get("name")]
    return _fit(DNSConfig(nameservers=_unique(base.nameservers + [str(n) for n in extra.get("nameservers") or []]),
                          searches=_unique(base.searches + [str(s) for s in extra.get("searches") or []]),
                          options=_merge_options(base.options, options)))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _merge_options(base: list[str], more: list[str]) -> list[str]:
    """Options by name, later ones replacing earlier ones of the same name (``ndots:2`` over
    ``ndots:5``), in first-seen order."""
    merged: dict[str, str] = {}
    for opt in [*base, *more]:
        merged[opt.split(":", 1)[0]] = opt
    return list(merged.values())


def _fit(cfg: DNSConfig) -> DNSConfig:
    searches: list[str] = []
    chars = 0
    for s in cfg.searches[:MAX_SEARCHES]:
        chars += len(s) + (1 if searches else 0)
        if chars > MAX_SEARCH_CHARS:
            break
        searches.append(s)
    return DNSConfig(cfg.nameservers[:MAX_NAMESERVERS], searches, cfg.options)
