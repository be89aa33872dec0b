"""What the agent runs for the node's network, behind one small protocol.

The agent knows only :class:`NodeComponent` (start after the podCIDR is settled, stop on
the way out) and :func:`components`; each part (overlay, service proxy, DNS, policy) is a
module of its own that this list names, so adding one touches one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.network.config import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, NetworkConfig, gateway
from bosun.network.dns.component import NodeDNS
from bosun.network.proxy.component import ServiceProxy

CONFIGMAPS = must_by_plural("", "v1", "configmaps")


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


class NodeComponent(Protocol):
    async def start(self) -> None:
        """Program the node and keep it in step until stop(); returns once the first sync is done."""
        ...

    async def stop(self, *, remove: bool = False) -> None:
        """Stop watching. What was programmed stays for a restarted agent to adopt, unless
        ``remove``: the node is going away (`bosun up`'s stop, `bosun agent --cleanup`)."""
        ...


def components(ctx: NodeNetworkContext) -> list[NodeComponent]:
    """The node's network parts, in start order."""
    return [ServiceProxy(ctx), NodeDNS(ctx.informers, ctx.network, gateway(ctx.pod_cidr), upstreams=ctx.upstream_dns)]


async def load_network_config(client: Client) -> NetworkConfig:
    """The cluster's settings as the server published them; the defaults when it did not
    (a server older than the ConfigMap, or a bare API server in tests)."""
    try:
        cm = await client.get(CONFIGMAPS, CONFIGMAP_NAME, namespace=CONFIGMAP_NAMESPACE)
    except ApiError as e:
        if e.status in (403, 404):
            return NetworkConfig()
        raise
    return NetworkConfig.from_data(cm.get("data") or {})
