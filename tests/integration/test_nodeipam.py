"""The node IPAM controller against a real API server: one block of the cluster CIDR per
Node, reservations as Leases, pre-set podCIDRs respected, an exhausted range said on the
Node (condition + event), two controllers at once never giving one block twice."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import client_for, eventually

from bosun.aio import cancel_and_wait
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.controllers._common import NODES, condition, resource
from bosun.controllers.nodeipam import LEASES, NAMESPACE, RESERVATION_LABEL, NodeIpamController, reservation_name
from bosun.controlplane import ComponentContext, ControlPlaneOptions
from bosun.network.config import NetworkConfig

EVENTS = resource("", "v1", "events")
Obj = dict[str, Any]


@pytest.fixture
async def client(fresh_server: RunningServer) -> AsyncIterator[Client]:
    c = client_for(fresh_server)
    try:
        yield c
    finally:
        await c.close()


@contextlib.asynccontextmanager
async def controller(client: Client, cidr: str, mask: int = 24) -> AsyncIterator[NodeIpamController]:
    """A controller of its own (informers and all), as a control plane's leader runs it."""
    ctx = ComponentContext(client, SharedInformers(client), ControlPlaneOptions())
    ctl = NodeIpamController(ctx, NetworkConfig(cluster_cidr=cidr, node_cidr_mask_size=mask))
    task = asyncio.create_task(ctl.run())
    try:
        yield ctl
        if task.done():
            task.result()  # a controller that died says why
    finally:
        await cancel_and_wait(task)
        await ctx.informers.stop()
        await ctx.close()


async def make_node(client: Client, name: str, pod_cidr: str = "") -> Obj:
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    node: Obj = await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                            "spec": spec})
    return node


async def cidr_of(client: Client, name: str) -> str:
    return str(((await client.get(NODES, name)).get("spec") or {}).get("podCIDR") or "")


async def reservations(client: Client) -> dict[str, str]:
    """Reserved block -> holder, as `kubectl get leases -n kube-system` shows them."""
    items = (await client.list(LEASES, NAMESPACE, label_selector=f"{RESERVATION_LABEL}=true"))["items"]
    return {i["metadata"]["annotations"]["bosun.io/pod-cidr"]: i["spec"]["holderIdentity"] for i in items}


async def test_each_node_gets_its_own_block_reserved(client: Client) -> None:
    async with controller(client, "10.230.0.0/16"):
        for name in ("a", "b", "c"):
            await make_node(client, name)
        cidrs = {n: await eventually(functools.partial(cidr_of, client, n), what=f"podCIDR of {n}") for n in "abc"}
        assert sorted(cidrs.values()) == ["10.230.0.0/24", "10.230.1.0/24", "10.230.2.0/24"]
        node = await client.get(NODES, "a")
        assert node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]]
        assert await reservations(client) == {cidr: name for name, cidr in cidrs.items()}
        lease = await client.get(LEASES, reservation_name(cidrs["b"]), NAMESPACE)
        assert lease["metadata"]["ownerReferences"][0]["uid"] == (await client.get(NODES, "b"))["metadata"]["uid"]


async def test_preset_cidrs_are_kept_and_never_handed_out(client: Client) -> None:
    await make_node(client, "inside", "10.231.0.0/24")  # the first block: would be handed out first
    await make_node(client, "outside", "192.168.77.0/24")
    async with controller(client, "10.231.0.0/16"):
        await make_node(client, "new")
        assert await eventually(lambda: cidr_of(client, "new")) == "10.231.1.0/24"
        assert await cidr_of(client, "inside") == "10.231.0.0/24"
        assert await cidr_of(client, "outside") == "192.168.77.0/24"
        assert await eventually(lambda: reservations(client)) == {"10.231.0.0/24": "inside",
                                                                  "10.231.1.0/24": "new"}


async def node_events(client: Client, name: str) -> list[tuple[str, str]]:
    items = (await client.list(EVENTS, None, field_selector=f"involvedObject.name={name}"))["items"]
    return [(e["reason"], e["message"]) for e in items]


async def test_exhausted_range_is_said_on_the_node_and_a_freed_block_reused(client: Client) -> None:
    async with controller(client, "10.232.0.0/23"):  # two /24 blocks
        await make_node(client, "one")
        await make_node(client, "two")
        first = await eventually(lambda: cidr_of(client, "one"))
        await eventually(lambda: cidr_of(client, "two"))
        await make_node(client, "three")

        async def unavailable() -> Obj | None:
            c = condition(await client.get(NODES, "three"), "NetworkUnavailable")
            return c if c and c["status"] == "True" else None

        cond = await eventually(unavailable, what="NetworkUnavailable on the third node")
        assert cond["reason"] == "CIDRNotAvailable"
        assert "10.232.0.0/23" in cond["message"]
        events = await eventually(lambda: node_events(client, "three"), what="an event on the node")
        assert events[0][0] == "CIDRNotAvailable" and "10.232.0.0/23" in events[0][1]
        assert await cidr_of(client, "three") == ""

        await client.delete(NODES, "one")
        assert await eventually(lambda: cidr_of(client, "three"), what="the freed block") == first
        cond = condition(await client.get(NODES, "three"), "NetworkUnavailable")
        assert cond is not None and cond["status"] == "False"
        assert (await reservations(client))[first] == "three"


async def test_reservation_of_a_deleted_node_is_released(client: Client) -> None:
    async with controller(client, "10.233.0.0/16"):
        await make_node(client, "gone")
        block = await eventually(lambda: cidr_of(client, "gone"))
        await client.delete(NODES, "gone")

        async def released() -> bool:
            try:
                await client.get(LEASES, reservation_name(block), NAMESPACE)
            except ApiError as e:
                return e.status == 404
            return False

        await eventually(released, what="the reservation to go")


async def test_two_controllers_at_once_never_give_one_block_twice(client: Client) -> None:
    """As two servers on one store during a leadership hand-over."""
    async with controller(client, "10.234.0.0/16"), controller(client, "10.234.0.0/16"):
        names = [f"n{i}" for i in range(12)]
        await asyncio.gather(*(make_node(client, n) for n in names))

        async def all_set() -> list[str] | None:
            cidrs = [await cidr_of(client, n) for n in names]
            return cidrs if all(cidrs) else None

        cidrs = await eventually(all_set, what="every node's podCIDR")
        assert len(set(cidrs)) == len(names)
        assert all(ipaddress.IPv4Network(c).subnet_of(ipaddress.IPv4Network("10.234.0.0/16")) for c in cidrs)
        held = await reservations(client)
        assert {held[c] for c in cidrs} == set(names)
