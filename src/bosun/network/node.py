"""What the agent runs for the node's network, behind one small protocol.

The agent knows only :class:`~bosun.network.base.NodeComponent` (start after the podCIDR is
settled, stop on the way out) and :func:`components`; each part (overlay, service proxy, DNS, policy,
ingress) is a
module of its own that this list names, so adding one touches one line here.
"""

from __future__ import annotations

from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.network.base import NodeComponent, NodeNetworkContext
from bosun.network.config import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, NetworkConfig, gateway
from bosun.network.dns.component import NodeDNS
from bosun.network.ingress.component import NodeIngress
from bosun.network.overlay import Overlay
from bosun.network.policy.component import PolicyEnforcer
from bosun.network.proxy.component import ServiceProxy

CONFIGMAPS = must_by_plural("", "v1", "configmaps")


def components(ctx: NodeNetworkContext) -> list[NodeComponent]:
    """The node's network parts, in start order."""
    parts: list[NodeComponent] = [
        Overlay(ctx),
        ServiceProxy(ctx),
        NodeDNS(ctx.informers, ctx.network, gateway(ctx.pod_cidr), upstreams=ctx.upstream_dns),
        PolicyEnforcer(ctx)]
    if ctx.ingress_http_port:
        parts.append(NodeIngress(ctx))  # after the proxy: nginx reaches Services by cluster IP
    return parts


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
