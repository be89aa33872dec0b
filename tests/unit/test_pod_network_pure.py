"""The pure parts of the pod network: how the cluster CIDR is cut into node blocks, and
which peers a node programs from the Node objects."""

from __future__ import annotations

from typing import Any

from bosun.controllers.nodeipam import Blocks, node_cidrs, reservation_name
from bosun.network.config import NetworkConfig
from bosun.network.overlay import VTEP_MAC, Peer, peers_of


def test_blocks_of_a_cidr_inside_outside_and_of_other_sizes() -> None:
    blocks = Blocks(NetworkConfig(cluster_cidr="10.244.0.0/22", node_cidr_mask_size=24))
    assert blocks.total == 4
    assert blocks.of("10.244.2.0/24") == ["10.244.2.0/24"]
    assert blocks.of("10.244.2.128/25") == ["10.244.2.0/24"]  # a smaller one takes its whole block
    assert blocks.of("10.244.0.0/23") == ["10.244.0.0/24", "10.244.1.0/24"]
    assert blocks.of("10.0.0.0/8") == [f"10.244.{i}.0/24" for i in range(4)]  # covers the cluster CIDR
    assert blocks.of("192.168.1.0/24") == [] and blocks.of("not a cidr") == []


def test_free_blocks_are_handed_out_lowest_first_and_a_freed_one_again() -> None:
    blocks = Blocks(NetworkConfig(cluster_cidr="10.244.0.0/22"))
    blocks.holder.update({"10.244.0.0/24": "a", "10.244.2.0/24": "c"})
    assert list(blocks.free()) == ["10.244.1.0/24", "10.244.3.0/24"]
    del blocks.holder["10.244.0.0/24"]
    assert next(blocks.free()) == "10.244.0.0/24"


def test_reservation_names_are_object_names() -> None:
    assert reservation_name("10.244.3.0/24") == "pod-cidr-10-244-3-0-24"


def node(name: str, cidr: str = "", ip: str = "", mac: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": {VTEP_MAC: mac} if mac else {}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {},
            "status": {"addresses": [{"type": "Hostname", "address": name},
                                     *([{"type": "InternalIP", "address": ip}] if ip else [])]}}


def test_node_cidrs_prefers_the_list() -> None:
    assert node_cidrs({"spec": {"podCIDR": "10.1.0.0/24", "podCIDRs": ["10.1.0.0/24"]}}) == ["10.1.0.0/24"]
    assert node_cidrs({"spec": {"podCIDR": "10.1.0.0/24"}}) == ["10.1.0.0/24"]
    assert node_cidrs({"spec": {}}) == []


def test_peers_are_the_other_complete_nodes() -> None:
    nodes = [node("me", "10.244.0.0/24", "192.0.2.1", "aa:00:00:00:00:01"),
             node("b", "10.244.1.0/24", "192.0.2.2", "aa:00:00:00:00:02"),
             node("no-cidr", ip="192.0.2.3", mac="aa:00:00:00:00:03"),
             node("no-ip", "10.244.3.0/24", mac="aa:00:00:00:00:04"),
             node("no-mac", "10.244.4.0/24", "192.0.2.5")]
    assert peers_of(nodes, "me", "vxlan") == {"10.244.1.0/24": Peer("10.244.1.0/24", "192.0.2.2", "aa:00:00:00:00:02")}
    # host-gw needs no VTEP: the node without a MAC is a peer too.
    assert sorted(peers_of(nodes, "me", "host-gw")) == ["10.244.1.0/24", "10.244.4.0/24"]
    assert Peer("10.244.1.0/24", "192.0.2.2").vtep == "10.244.1.0"
