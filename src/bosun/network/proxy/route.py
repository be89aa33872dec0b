"""The node's route to the service range, so that the node itself can reach cluster IPs.

A process on the node connecting to a cluster IP needs a route to it *before* any rule runs:
connect() picks the source address and fails with "network unreachable" (no route) or "no
route to host" (an ``unreachable`` route) before the output hook could DNAT the packet. The
proxy therefore routes the service range to the interface holding the node's address, with
that address as source. No packet ever leaves with a service address on it: a programmed
one is translated first (nat hooks), any other is refused by the table's filter chains
(``filter-forward``/``filter-output-post``), which is also what keeps a packet to a Service
not yet programmed from leaving by the default route.
"""

from __future__ import annotations

import ipaddress
import json
import logging

from bosun.agent.runtime import spawn

log = logging.getLogger(__name__)


async def _ip(prefix: tuple[str, ...], *args: str) -> tuple[int, str, str]:
    code, out, err = await spawn.run([*prefix, "ip", *args])
    return code, out.decode(errors="replace"), err.decode(errors="replace").strip()


async def device_of(address: str, prefix: tuple[str, ...] = ()) -> str:
    """The interface that holds ``address`` ("" when none does, e.g. behind NAT)."""
    code, out, _ = await _ip(prefix, "-j", "-4", "addr", "show")
    if code != 0:
        return ""
    for link in json.loads(out or "[]"):
        if any(a.get("local") == address for a in link.get("addr_info") or []):
            return str(link.get("ifname") or "")
    return ""


async def ensure(service_cidr: str, node_ip: str, prefix: tuple[str, ...] = ()) -> str:
    """Route ``service_cidr`` to the node address's interface; returns the interface ("" if
    the node's address is on no interface here: then the route is left to the host).
    ``prefix`` runs ``ip`` elsewhere (as :class:`.apply.Kernel`'s)."""
    if ipaddress.ip_address(node_ip).is_loopback:
        # `bosun up` on one machine: a route by `lo` would give cluster IPs a source pods and
        # other nodes cannot answer; the host's default route serves the node instead.
        return ""
    dev = await device_of(node_ip, prefix)
    if not dev:
        log.warning("node address %s is on no interface here: no route for the service range %s "
                    "(the node itself reaches cluster IPs only through its default route)", node_ip, service_cidr)
        return ""
    code, _, err = await _ip(prefix, "route", "replace", service_cidr, "dev", dev, "src", node_ip)
    if code != 0:
        log.warning("cannot route the service range %s to %s: %s", service_cidr, dev, err)
        return ""
    return dev


async def remove(service_cidr: str, dev: str, prefix: tuple[str, ...] = ()) -> None:
    if dev:
        await _ip(prefix, "route", "del", service_cidr, "dev", dev)
