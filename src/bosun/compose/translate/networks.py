"""Compose networks as pod labels and NetworkPolicies: a service's pods accept traffic only
from pods that share one of its networks (and from outside on its published ports), so
services on different networks cannot talk, as on Docker's overlay networks."""

from __future__ import annotations

from bosun.compose import normalize
from bosun.compose.translate.context import JSON, NETWORK_LABEL_PREFIX, Service, dns_name

_DRIVERS = frozenset({"", "overlay", "bridge"})


def network_label(network: str) -> str:
    return NETWORK_LABEL_PREFIX + dns_name(network)


def _peer(svc: Service, network: str) -> JSON:
    spec = svc.stack.project.top("networks").get(network) or {}
    pods = {"podSelector": {"matchLabels": {network_label(network): "true"}}}
    if spec.get("external"):
        # An external network is shared with other stacks: any namespace's pods on it.
        return {**pods, "namespaceSelector": {}}
    return {**pods, "namespaceSelector": {"matchLabels": svc.stack.namespace_selector()}}


def warn_network_fields(svc: Service, network: str) -> None:
    spec = svc.stack.project.top("networks").get(network) or {}
    driver = str(spec.get("driver") or "")
    if driver not in _DRIVERS:
        svc.stack.warnings.add(f"networks.{network}", "driver", f"{driver!r} is not supported; the cluster "
                               "network is used with policies between networks")
    for key in ("driver_opts", "ipam", "enable_ipv6", "attachable", "internal"):
        if spec.get(key):
            svc.stack.warnings.add(f"networks.{network}", key, "not supported; ignored")


class Networks:
    fields = frozenset({"networks"})

    def apply(self, svc: Service) -> list[JSON]:
        networks = list((svc.spec.get("networks") or {"default": {}}).items())
        for name, spec in networks:
            svc.pod_labels[network_label(name)] = "true"
            warn_network_fields(svc, name)
            for key in ("ipv4_address", "ipv6_address", "link_local_ips", "mac_address", "priority"):
                if (spec or {}).get(key):
                    svc.warn(f"networks.{name}.{key}", "not supported; addresses come from the node's pod range")
        ingress: list[JSON] = [{"from": [_peer(svc, name) for name, _ in networks]}]
        published = [p for p in normalize.ports(svc.spec.get("ports"), svc.where) if p.get("published")]
        if published:
            # Published ports answer everyone (the routing mesh forwards from any node).
            ingress.append({"ports": [{"port": int(p["target"]), "protocol": str(p["protocol"]).upper()}
                                      for p in published]})
        policy = {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": svc.metadata(),
            "spec": {"podSelector": {"matchLabels": svc.selector()}, "policyTypes": ["Ingress"],
                     "ingress": ingress},
        }
        return [policy]
