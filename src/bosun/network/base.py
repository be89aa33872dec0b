"""The contract between the agent and the node's network parts: the context they are
given and the small protocol they implement. Kept apart from :mod:`bosun.network.node`
(which names every part) so that a part imports this, never the list that imports it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.network.config import NetworkConfig


@dataclass
class NodeNetworkContext:
    client: Client
    informers: SharedInformers  # cluster-wide informers, shared by the components (started by each)
    node_name: str
    node_ip: str
    pod_cidr: str
    network: NetworkConfig
    state_dir: Path  # the agent's data_dir / "network"
    # Where cluster DNS sends names outside the cluster (`bosun agent --upstream-dns`,
    # ADDR or ADDR:PORT); empty: the node's /etc/resolv.conf nameservers.
    upstream_dns: tuple[str, ...] = ()
    # Where each node's nginx serves Ingresses (`--ingress-http-port/--ingress-https-port`);
    # an HTTP port of 0 turns the node's ingress off, an HTTPS port of 0 only its TLS.
    ingress_http_port: int = 80
    ingress_https_port: int = 443


class NodeComponent(Protocol):
    async def start(self) -> None:
        """Program the node and keep it in step until stop(); returns once the first sync is done."""
        ...

    async def stop(self, *, remove: bool = False) -> None:
        """Stop watching. What was programmed stays for a restarted agent to adopt, unless
        ``remove``: the node is going away (`bosun up`'s stop, `bosun agent --cleanup`)."""
        ...
