"""The cluster's network settings, decided once by the control plane and read by every node.

`bosun server` checks them at start (overlapping ranges are refused there, in one line) and
publishes them as the ConfigMap ``kube-system/bosun-network``, so agents, which may run on
other machines, never need the server's flags repeated: they read the one copy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from typing import Any

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "bosun-network"
BACKENDS = ("vxlan", "host-gw")


@dataclass(frozen=True)
class NetworkConfig:
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    node_cidr_mask_size: int = 24
    backend: str = "vxlan"
    cluster_domain: str = "cluster.local"
    node_port_range: str = "30000-32767"

    def validate(self) -> None:
        """Raise ValueError with one line naming the settings in conflict."""
        try:
            cluster = ipaddress.ip_network(self.cluster_cidr)
        except ValueError as e:
            raise ValueError(f"--cluster-cidr {self.cluster_cidr}: {e}") from None
        try:
            service = ipaddress.ip_network(self.service_cidr)
        except ValueError as e:
            raise ValueError(f"--service-cidr {self.service_cidr}: {e}") from None
        for flag, net in (("--cluster-cidr", cluster), ("--service-cidr", service)):
            if net.version != 4:
                raise ValueError(f"{flag} {net}: only IPv4 pod and service networks are supported")
        if cluster.overlaps(service):
            raise ValueError(f"--cluster-cidr {self.cluster_cidr} overlaps --service-cidr {self.service_cidr}")
        if not cluster.prefixlen <= self.node_cidr_mask_size <= 30:
            raise ValueError(f"--node-cidr-mask-size {self.node_cidr_mask_size} does not fit in "
                             f"--cluster-cidr {self.cluster_cidr} (needs /{cluster.prefixlen} to /30)")
        if self.backend not in BACKENDS:
            raise ValueError(f"--network-backend {self.backend}: must be one of {', '.join(BACKENDS)}")
        low, _, high = self.node_port_range.partition("-")
        if not (low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) < 65536):
            raise ValueError(f"--service-node-port-range {self.node_port_range}: expected LOW-HIGH")

    @property
    def node_ports(self) -> tuple[int, int]:
        low, _, high = self.node_port_range.partition("-")
        return int(low), int(high)

    def to_data(self) -> dict[str, str]:
        """The ConfigMap's ``data`` (camelCase keys, as the flags' Kubernetes spellings)."""
        return {_camel(f.name): str(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> NetworkConfig:
        """Missing keys take the defaults, so an older server's ConfigMap still reads."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(_camel(f.name))
            if value is not None:
                kw[f.name] = int(value) if f.type in (int, "int") else str(value)
        return cls(**kw)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.upper() if p in ("cidr", "ip") else p.title() for p in rest)


def gateway(pod_cidr: str) -> str:
    """The node's address on its pod bridge (the CNI bridge plugin's gateway: the first host):
    where pods send what leaves the pod, and where the node's DNS server answers them."""
    return str(ipaddress.ip_network(pod_cidr)[1])
