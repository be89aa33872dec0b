"""The pod network between nodes (placeholder: the MTU the pods get)."""

from __future__ import annotations

import socket

from pyroute2 import AsyncIPRoute

from bosun.network.config import NetworkConfig

VXLAN_OVERHEAD = 50  # outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14)


async def link_mtu(address: str) -> int | None:
    """The MTU of the (non-loopback) link that holds ``address`` here, or None."""
    async with AsyncIPRoute() as ipr:
        indexes = [a["index"] async for a in await ipr.get_addr(family=socket.AF_INET, address=address)]
        for index in indexes:
            for link in await ipr.link("get", index=index):
                if link.get("IFLA_IFNAME") != "lo":
                    return int(link.get("IFLA_MTU"))
    return None


async def pod_mtu(network: NetworkConfig, node_ip: str) -> int | None:
    """The pods' MTU: the node link's, less the VXLAN header under the vxlan backend (a
    full-size pod packet must still fit once wrapped); None = leave the default."""
    if network.backend != "vxlan":
        return None
    mtu = await link_mtu(node_ip)
    return None if mtu is None else mtu - VXLAN_OVERHEAD
