"""A pod's resolv.conf for each dnsPolicy, with dnsConfig appended, as the kubelet writes it."""

from __future__ import annotations

from typing import Any

from bosun.agent.poddns import ClusterDNS, dns_config, parse_resolv_conf
from bosun.agent.runtime.base import DNSConfig

HOST = parse_resolv_conf("# made by hand\nnameserver 192.0.2.53\nnameserver 192.0.2.54 ; second\n"
                         "domain ignored.example\nsearch corp.example lab.example\noptions edns0 ndots:2\n"
                         "options timeout:1\n")
CLUSTER = ClusterDNS("10.244.3.1", "cluster.local")
SEARCH = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"containers": [{"name": "c"}], **spec}}


def test_the_nodes_resolv_conf_is_read_as_glibc_reads_it() -> None:
    assert HOST == DNSConfig(["192.0.2.53", "192.0.2.54"], ["corp.example", "lab.example"],
                             ["edns0", "ndots:2", "timeout:1"])
    assert parse_resolv_conf("") == DNSConfig()


def test_cluster_first_is_the_default() -> None:
    got = dns_config(pod(), HOST, CLUSTER)
    assert got == DNSConfig(["10.244.3.1"], [*SEARCH, "corp.example", "lab.example"], ["ndots:5"])
    assert dns_config(pod(dnsPolicy="ClusterFirst"), HOST, CLUSTER) == got


def test_host_network_pods_keep_the_nodes_unless_cluster_first_with_host_net() -> None:
    assert dns_config(pod(hostNetwork=True), HOST, CLUSTER) == HOST
    got = dns_config(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), HOST, CLUSTER)
    assert got.nameservers == ["10.244.3.1"] and got.searches[:3] == SEARCH


def test_default_policy_and_a_node_without_cluster_dns_use_the_nodes() -> None:
    assert dns_config(pod(dnsPolicy="Default"), HOST, CLUSTER) == HOST
    assert dns_config(pod(), HOST, None) == HOST


def test_none_takes_only_dns_config() -> None:
    got = dns_config(pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "1"}]}),
        HOST, CLUSTER)
    assert got == DNSConfig(["1.1.1.1"], ["a.example"], ["ndots:1"])


def test_dns_config_is_appended_and_its_options_win() -> None:
    got = dns_config(pod(dnsConfig={"nameservers": ["10.244.3.1", "9.9.9.9"], "searches": ["extra.example"],
                                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"},
                                                {"name": "single-request-reopen"}]}), HOST, CLUSTER)
    assert got.nameservers == ["10.244.3.1", "9.9.9.9"]  # the duplicate dropped
    assert got.searches == [*SEARCH, "corp.example", "lab.example", "extra.example"]
    assert got.options == ["ndots:2", "edns0", "single-request-reopen"]


def test_limits_are_cut_as_the_kubelet_cuts_them() -> None:
    got = dns_config(pod(dnsPolicy="None", dnsConfig={
        "nameservers": [f"10.0.0.{i}" for i in range(5)], "searches": [f"s{i}.example" for i in range(40)]}),
        HOST, CLUSTER)
    assert got.nameservers == ["10.0.0.0", "10.0.0.1", "10.0.0.2"] and len(got.searches) == 32
    long = [("x" * 60 + f"{i}.example") for i in range(32)]
    got = dns_config(pod(dnsPolicy="None", dnsConfig={"nameservers": ["10.0.0.1"], "searches": long}), HOST, CLUSTER)
    assert len(" ".join(got.searches)) <= 2048 and got.searches == long[:len(got.searches)]
