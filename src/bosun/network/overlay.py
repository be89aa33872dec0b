"""The pod network between nodes: how a packet for another node's pod gets there.

Programmed from the Node objects alone (each peer's ``spec.podCIDR`` and InternalIP), as
flannel does, so there is no store or daemon of its own:

- ``vxlan`` (default): one kernel VXLAN device ``bosun.1`` (VNI 1, UDP 8472, local = this
  node's address, no learning: every entry is written, none guessed from traffic) holding
  the podCIDR's network address as its own. Per peer: a route ``CIDR via <peer's .0>
  onlink dev bosun.1``, a permanent neighbour ``<peer's .0> -> <peer's VTEP MAC>`` and an
  FDB entry ``<peer's VTEP MAC> -> <peer's node address>``. This node's VTEP MAC is
  published as the Node annotation ``bosun.io/vtep-mac`` for the others. Pods' MTU is the
  link's less 50 (the VXLAN wrapping), see :func:`pod_mtu`.
- ``host-gw``: per peer a plain route ``CIDR via <peer's node address>`` (nodes share a link).

Routes of ours carry protocol 176 (``proto 176`` in ``ip route``), which is how a restarted
agent finds and adopts them: every sync reads the kernel's state and writes only the
difference (``replace`` never duplicates), so restarts leave no doubles and a peer that
went away while the agent was down is removed. ``unreachable`` routes for the cluster CIDR
(and, for forwarded traffic, the service CIDR) make a packet for an address with no rule
fail at once instead of leaving by the default route; locally sent packets for the service
CIDR still see the main table, since the kernel routes them before the service proxy's
NAT rewrites their destination. IPv4 forwarding is turned on.

A node whose address is loopback (a single-node ``bosun up`` or an in-process test agent)
has no peer to reach, and this component leaves the host alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink import NETLINK_ROUTE
from pyroute2.netlink.exceptions import NetlinkError

from bosun.aio import cancel_and_wait
from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.network.base import NodeNetworkContext
from bosun.network.config import NetworkConfig

log = logging.getLogger(__name__)

NODES = must_by_plural("", "v1", "nodes")
DEVICE = "bosun.1"
VNI = 1
VXLAN_PORT = 8472  # the Linux kernel's (and flannel's) VXLAN port
VXLAN_OVERHEAD = 50  # outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14)
VTEP_MAC = "bosun.io/vtep-mac"
PROTO = 176  # rtm_protocol of our routes
SERVICE_TABLE = 2989  # holds the service CIDR's unreachable route, for forwarded packets only
RULE_PREF = 30989  # and +1: "local -> main", then "-> SERVICE_TABLE", for the service CIDR
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 0x04
RTN_UNICAST = 1  # peers' routes (the unreachable ones, type 7, stay)


@dataclass(frozen=True)
class Peer:
    cidr: str
    ip: str  # the node's InternalIP
    mac: str = ""  # its VTEP MAC (vxlan)

    @property
    def vtep(self) -> str:
        """The peer's address on its VXLAN device: its podCIDR's network address."""
        return str(ipaddress.ip_network(self.cidr, strict=False).network_address)


def internal_ip(node: dict[str, Any]) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP" and a.get("address"):
            return str(a["address"])
    return ""


def peers_of(nodes: list[dict[str, Any]], me: str, backend: str) -> dict[str, Peer]:
    """What the kernel should hold for each other node (those not yet complete wait)."""
    out: dict[str, Peer] = {}
    for node in nodes:
        m = node.get("metadata") or {}
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        ip = internal_ip(node)
        mac = str((m.get("annotations") or {}).get(VTEP_MAC) or "")
        if m.get("name") == me or not cidr or not ip or (backend == "vxlan" and not mac):
            continue
        out[cidr] = Peer(cidr, ip, mac if backend == "vxlan" else "")
    return out


def _netlink_fd_in(netns: str) -> int:
    """A NETLINK_ROUTE socket opened inside ``netns`` by a short-lived thread of our own
    (setns moves only the calling thread, and the thread ends with it). pyroute2's own
    ``netns=`` forks a child to do this, and a fork of a process that runs other threads can
    hang for good on a lock one of them held (seen in tests after the harness had run)."""
    fds: list[int] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            pyroute2_netns.setns(netns, flags=0, fork=False)
            fds.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE).detach())
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=make, name=f"netlink-{netns}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return fds[0]


def iproute(netns: str | None = None) -> AsyncIPRoute:
    """Netlink here, or in the named network namespace (tests play several nodes)."""
    return AsyncIPRoute() if netns is None else AsyncIPRoute(fileno=_netlink_fd_in(netns))


async def link_mtu(address: str, netns: str | None = None) -> int | None:
    """The MTU of the (non-loopback) link that holds ``address`` here, or None."""
    async with iproute(netns) as ipr:
        indexes = [a["index"] async for a in await ipr.get_addr(family=socket.AF_INET, address=address)]
        for index in indexes:
            for link in await ipr.link("get", index=index):
                if link.get("IFLA_IFNAME") != "lo":
                    return int(link.get("IFLA_MTU"))
    return None


async def pod_mtu(network: NetworkConfig, node_ip: str, netns: str | None = None) -> int | None:
    """The pods' MTU: the node link's, less the VXLAN header under the vxlan backend (a
    full-size pod packet must still fit once wrapped); None = leave the default."""
    if network.backend != "vxlan":
        return None
    mtu = await link_mtu(node_ip, netns)
    return None if mtu is None else mtu - VXLAN_OVERHEAD


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return True


class Overlay:
    """The NodeComponent (see :mod:`bosun.network.node`). ``netns``: program that network
    namespace instead of our own (tests play several nodes from one process)."""

    def __init__(self, ctx: NodeNetworkContext, *, netns: str | None = None) -> None:
        self.ctx = ctx
        self.netns = netns
        self.network = ctx.network
        self.vxlan = ctx.network.backend == "vxlan"
        self.active = not _is_loopback(ctx.node_ip)
        self.nodes = ctx.informers.get(NODES)
        self.mac = ""
        self.programmed: dict[str, Peer] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def _ipr(self) -> AsyncIterator[AsyncIPRoute]:
        async with iproute(self.netns) as ipr:
            yield ipr

    # -- NodeComponent -------------------------------------------------------------------

    async def start(self) -> None:
        if not self.active:
            return
        await self._forwarding()
        async with self._ipr() as ipr:
            if self.vxlan:
                self.mac = await self._ensure_device(ipr)
            else:
                await self._remove_device(ipr)  # left by an earlier vxlan run
            await self._ensure_unreachable(ipr)
        if self.vxlan:
            await self._publish_mac()
        self.nodes.add_handler(lambda n: self._dirty.set(), self._changed, lambda n: self._dirty.set())
        await self.ctx.informers.start()
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="overlay")

    async def stop(self, *, remove: bool = False) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if remove and self.active:
            async with self._ipr() as ipr:
                await self._remove_device(ipr)
                for route in await self._our_routes(ipr, table=None):
                    await _quiet(ipr.route("del", **_route_key(route)))
                await self._remove_rules(ipr)
            self.programmed.clear()

    # -- keeping in step ---------------------------------------------------------------

    def _changed(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        def key(n: dict[str, Any]) -> tuple[Any, ...]:
            return ((n.get("spec") or {}).get("podCIDR"), internal_ip(n),
                    ((n.get("metadata") or {}).get("annotations") or {}).get(VTEP_MAC))
        if key(old) != key(new):
            self._dirty.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except (NetlinkError, OSError) as e:
                log.warning("overlay sync failed (retrying): %s", e)
                await asyncio.sleep(1.0)
                self._dirty.set()
            except Exception:
                log.exception("overlay sync failed (retrying)")
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def sync(self) -> None:
        """Make the kernel hold exactly the peers' routes (and neighbours, FDB entries)."""
        want = peers_of(self.nodes.list(), self.ctx.node_name, self.network.backend)
        async with self._ipr() as ipr:
            index = await self._index(ipr) if self.vxlan else 0
            routes = {_dst(r): r for r in await self._our_routes(ipr, table=254) if r["type"] == RTN_UNICAST}
            for dst, route in routes.items():
                if dst not in want:
                    await _quiet(ipr.route("del", **_route_key(route)))
            if self.vxlan:
                await self._sync_l2(ipr, index, want)
            for peer in want.values():
                if self.vxlan:
                    await ipr.route("replace", dst=peer.cidr, gateway=peer.vtep, oif=index,
                                    flags=RTNH_F_ONLINK, proto=PROTO)
                else:
                    await ipr.route("replace", dst=peer.cidr, gateway=peer.ip, proto=PROTO)
        self.programmed = want

    async def _sync_l2(self, ipr: AsyncIPRoute, index: int, want: dict[str, Peer]) -> None:
        neigh = {(n.get("NDA_DST"), n.get("NDA_LLADDR"))
                 async for n in await ipr.neigh("dump", family=socket.AF_INET, ifindex=index)}
        fdb = {(n.get("NDA_LLADDR"), n.get("NDA_DST")) async for n in await ipr.fdb("dump", ifindex=index)}
        wanted_neigh = {(p.vtep, p.mac) for p in want.values()}
        wanted_fdb = {(p.mac, p.ip) for p in want.values()}
        for dst, mac in neigh - wanted_neigh:
            if dst and mac:
                await _quiet(ipr.neigh("del", family=socket.AF_INET, ifindex=index, dst=dst, lladdr=mac))
        for mac, dst in fdb - wanted_fdb:
            await _quiet(ipr.neigh("del", family=socket.AF_BRIDGE, ifindex=index, lladdr=mac, dst=dst,
                                   flags=NTF_SELF))
        for p in want.values():
            if (p.vtep, p.mac) not in neigh:
                await ipr.neigh("replace", family=socket.AF_INET, ifindex=index, dst=p.vtep, lladdr=p.mac,
                                state=NUD_PERMANENT)
            if (p.mac, p.ip) not in fdb:
                await ipr.neigh("replace", family=socket.AF_BRIDGE, ifindex=index, lladdr=p.mac, dst=p.ip,
                                flags=NTF_SELF, state=NUD_PERMANENT)

    # -- the device, the unreachable routes, forwarding ----------------------------------

    async def _index(self, ipr: AsyncIPRoute) -> int:
        found = await ipr.link_lookup(ifname=DEVICE)
        if not found:
            raise OSError(f"{DEVICE} is gone")
        return int(found[0])

    async def _ensure_device(self, ipr: AsyncIPRoute) -> str:
        """Adopt ``bosun.1`` when it is as wanted (its MAC, so peers' entries, stay valid);
        otherwise (another address, VNI or port) make it again. Returns its MAC."""
        under = [a["index"] async for a in await ipr.get_addr(family=socket.AF_INET, address=self.ctx.node_ip)]
        if not under:
            raise OSError(f"no interface holds the node address {self.ctx.node_ip}")
        found = await ipr.link_lookup(ifname=DEVICE)
        if found:
            link = (await ipr.link("get", index=found[0]))[0]
            info = link.get("IFLA_LINKINFO")
            data = info.get("IFLA_INFO_DATA") if info is not None else None
            got = (None, None, None) if data is None else (
                data.get("IFLA_VXLAN_ID"), data.get("IFLA_VXLAN_LOCAL"), data.get("IFLA_VXLAN_PORT"))
            if got != (VNI, self.ctx.node_ip, VXLAN_PORT):
                await ipr.link("del", index=found[0])
                found = []
        if not found:
            await ipr.link("add", ifname=DEVICE, kind="vxlan", vxlan_id=VNI, vxlan_local=self.ctx.node_ip,
                           vxlan_port=VXLAN_PORT, vxlan_learning=0, vxlan_link=under[0])
            found = await ipr.link_lookup(ifname=DEVICE)
        index = int(found[0])
        mtu = await link_mtu(self.ctx.node_ip, self.netns)
        await ipr.link("set", index=index, state="up", **({"mtu": mtu - VXLAN_OVERHEAD} if mtu else {}))
        own = str(ipaddress.ip_network(self.ctx.pod_cidr, strict=False).network_address)
        have = {a.get("IFA_ADDRESS") async for a in await ipr.get_addr(family=socket.AF_INET, index=index)}
        for addr in have - {own}:
            await _quiet(ipr.addr("del", index=index, address=addr, prefixlen=32))
        if own not in have:
            await ipr.addr("add", index=index, address=own, prefixlen=32)
        return str((await ipr.link("get", index=index))[0].get("IFLA_ADDRESS"))

    async def _remove_device(self, ipr: AsyncIPRoute) -> None:
        for index in await ipr.link_lookup(ifname=DEVICE):
            await _quiet(ipr.link("del", index=index))

    async def _ensure_unreachable(self, ipr: AsyncIPRoute) -> None:
        await ipr.route("replace", dst=self.network.cluster_cidr, type="unreachable", proto=PROTO)
        await ipr.route("replace", dst=self.network.service_cidr, type="unreachable", proto=PROTO,
                        table=SERVICE_TABLE)
        svc = ipaddress.ip_network(self.network.service_cidr)
        rules = [dict(priority=RULE_PREF, dst=str(svc.network_address), dst_len=svc.prefixlen, iifname="lo",
                      table=254),
                 dict(priority=RULE_PREF + 1, dst=str(svc.network_address), dst_len=svc.prefixlen,
                      table=SERVICE_TABLE)]
        have = [r async for r in await ipr.rule("dump", family=socket.AF_INET)]
        for r in have:  # ours, for another service CIDR (settings changed)
            if r.get("FRA_PRIORITY") in (RULE_PREF, RULE_PREF + 1) and (
                    r.get("FRA_DST"), r["dst_len"]) != (str(svc.network_address), svc.prefixlen):
                await _quiet(ipr.rule("del", priority=r.get("FRA_PRIORITY"), dst=r.get("FRA_DST"),
                                      dst_len=r["dst_len"], table=r.get("FRA_TABLE")))
        present = {(r.get("FRA_PRIORITY"), r.get("FRA_DST")) for r in have}
        for rule in rules:
            if (rule["priority"], rule["dst"]) not in present:
                await ipr.rule("add", family=socket.AF_INET, **rule)

    async def _remove_rules(self, ipr: AsyncIPRoute) -> None:
        for r in [r async for r in await ipr.rule("dump", family=socket.AF_INET)]:
            if r.get("FRA_PRIORITY") in (RULE_PREF, RULE_PREF + 1):
                await _quiet(ipr.rule("del", priority=r.get("FRA_PRIORITY"), dst=r.get("FRA_DST"),
                                      dst_len=r["dst_len"], table=r.get("FRA_TABLE")))

    async def _our_routes(self, ipr: AsyncIPRoute, table: int | None) -> list[Any]:
        kw: dict[str, Any] = {"table": table} if table is not None else {}
        return [r async for r in await ipr.route("dump", family=socket.AF_INET, proto=PROTO, **kw)
                if r.get("proto") == PROTO]

    async def _forwarding(self) -> None:
        cmd = ["sysctl", "-qw", "net.ipv4.ip_forward=1"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            log.warning("cannot turn IPv4 forwarding on: %s", err.decode(errors="replace").strip())

    async def _publish_mac(self) -> None:
        try:
            await self.ctx.client.patch(NODES, self.ctx.node_name, {"metadata": {"annotations": {VTEP_MAC: self.mac}}})
        except ApiError as e:
            log.warning("cannot publish this node's VTEP MAC: %s", e)


def _dst(route: Any) -> str:
    return f"{route.get('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"


def _route_key(route: Any) -> dict[str, Any]:
    return {"dst": _dst(route), "table": route.get("RTA_TABLE") or route["table"], "type": route["type"],
            "proto": PROTO}


async def _quiet(op: Any) -> None:
    """Removal of what may already be gone."""
    with contextlib.suppress(NetlinkError):
        await op
