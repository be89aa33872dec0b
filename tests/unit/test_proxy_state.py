"""The service proxy's wanted state and diff, as pure functions (no kernel, no API)."""

from __future__ import annotations

from typing import Any

from bosun.network.proxy.base import NodeNetwork, base_commands
from bosun.network.proxy.diff import diff, full
from bosun.network.proxy.state import NodeView, Ruleset, ruleset, service_rules

NODE = NodeView(node_name="n1", cluster_cidr="10.244.0.0/16")
Obj = dict[str, Any]


def svc(name: str = "web", ns: str = "shop", **spec: Any) -> Obj:
    body: Obj = {"clusterIP": "10.96.0.10", "type": "ClusterIP",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": ns}, "spec": body}


def ep(ip: str, node: str = "n1", ready: bool = True, terminating: bool = False) -> Obj:
    return {"addresses": [ip], "nodeName": node,
            "conditions": {"ready": ready, "serving": ready or terminating, "terminating": terminating}}


def slc(*eps: Obj, name: str = "web", port: int = 8080, proto: str = "TCP") -> Obj:
    return {"metadata": {"name": f"{name}-x", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": proto}],
            "endpoints": list(eps)}


def test_cluster_ip_picks_ready_endpoints_at_random_and_masquerades_hairpin() -> None:
    r = service_rules(svc(), [slc(ep("10.244.1.5"), ep("10.244.2.7", "n2"), ep("10.244.1.9", ready=False))], NODE)
    assert r.elements == {("service-ips", "10.96.0.10 . tcp . 80"): "goto svc-shop/web/tcp/80"}
    assert r.chains["svc-shop/web/tcp/80"] == (
        "numgen random mod 2 vmap { 0 : goto ep-shop/web/tcp/80/10.244.1.5/8080, "
        "1 : goto ep-shop/web/tcp/80/10.244.2.7/8080 }",)
    assert r.chains["ep-shop/web/tcp/80/10.244.1.5/8080"] == (
        "ip saddr 10.244.1.5 jump mark-for-masquerade", "meta l4proto tcp dnat to 10.244.1.5:8080")
    assert not any("10.244.1.9" in c for c in r.chains)  # not ready: out of rotation


def test_no_ready_endpoints_rejects_and_headless_is_skipped() -> None:
    r = service_rules(svc(type="NodePort", ports=[{"port": 53, "protocol": "UDP", "nodePort": 30053}]),
                      [slc(ep("10.244.1.5", ready=False))], NODE)
    assert r.chains == {}
    assert r.elements == {("no-endpoint-services", "10.96.0.10 . udp . 53"): "goto reject-chain",
                          ("no-endpoint-nodeports", "udp . 30053"): "goto reject-chain"}
    assert service_rules(svc(clusterIP="None"), [slc(ep("10.244.1.5"))], NODE).elements == {}
    assert service_rules(svc(type="ExternalName", clusterIP=""), [], NODE).elements == {}


def test_terminating_serving_endpoints_are_used_only_when_none_is_ready() -> None:
    r = service_rules(svc(), [slc(ep("10.244.1.5", ready=False, terminating=True))], NODE)
    assert "ep-shop/web/tcp/80/10.244.1.5/8080" in r.chains
    r = service_rules(svc(), [slc(ep("10.244.1.5", ready=False, terminating=True), ep("10.244.1.6"))], NODE)
    assert "ep-shop/web/tcp/80/10.244.1.5/8080" not in r.chains


def test_node_port_cluster_policy_masquerades() -> None:
    r = service_rules(svc(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                      [slc(ep("10.244.2.7", "n2"))], NODE)
    assert r.elements[("service-nodeports", "tcp . 30080")] == "goto ext-shop/web/tcp/80"
    assert r.chains["ext-shop/web/tcp/80"] == ("jump mark-for-masquerade", "goto svc-shop/web/tcp/80")


def test_local_policy_keeps_the_source_and_uses_local_endpoints_only() -> None:
    spec: Obj = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "externalIPs": ["192.0.2.9"],
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}
    lb = {**svc(**spec), "status": {"loadBalancer": {"ingress": [{"ip": "172.30.0.2"}]}}}
    r = service_rules(lb, [slc(ep("10.244.1.5"), ep("10.244.2.7", "n2"))], NODE)
    ext = r.chains["ext-shop/web/tcp/80"]
    assert ext[0] == "ip saddr 10.244.0.0/16 goto svc-shop/web/tcp/80"  # pods: cluster behaviour
    assert "mark-for-masquerade" not in ext[-1]
    assert ext[-1] == "numgen random mod 1 vmap { 0 : goto ep-shop/web/tcp/80/10.244.1.5/8080 }"
    assert r.elements[("service-ips", "192.0.2.9 . tcp . 80")] == "goto ext-shop/web/tcp/80"
    assert r.elements[("service-ips", "172.30.0.2 . tcp . 80")] == "goto ext-shop/web/tcp/80"
    # A node without a local endpoint drops outside traffic instead of forwarding it.
    other = service_rules(lb, [slc(ep("10.244.2.7", "n2"))], NODE)
    assert other.chains["ext-shop/web/tcp/80"][-1] == "drop"


def test_client_ip_affinity_pins_through_a_set_per_endpoint() -> None:
    r = service_rules(svc(sessionAffinity="ClientIP",
                          sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
                      [slc(ep("10.244.1.5"))], NODE)
    assert r.sets == {"aff-shop/web/tcp/80/10.244.1.5/8080": "{ type ipv4_addr; flags dynamic,timeout; }"}
    assert r.chains["svc-shop/web/tcp/80"][0] == (
        "ip saddr @aff-shop/web/tcp/80/10.244.1.5/8080 goto ep-shop/web/tcp/80/10.244.1.5/8080")
    assert "update @aff-shop/web/tcp/80/10.244.1.5/8080 { ip saddr timeout 60s }" in \
        r.chains["ep-shop/web/tcp/80/10.244.1.5/8080"]


def test_conflicting_external_ip_goes_to_the_first_service() -> None:
    a = service_rules(svc("a", externalIPs=["192.0.2.9"]), [slc(ep("10.244.1.5"), name="a")], NODE)
    b = service_rules(svc("b", externalIPs=["192.0.2.9"], clusterIP="10.96.0.11"),
                      [slc(ep("10.244.1.6"), name="b")], NODE)
    merged = ruleset([a, b])
    assert merged.elements[("service-ips", "192.0.2.9 . tcp . 80")] == "goto ext-shop/a/tcp/80"


def test_diff_sends_only_what_changed_in_a_valid_order() -> None:
    one = ruleset([service_rules(svc(), [slc(ep("10.244.1.5"), ep("10.244.1.6"))], NODE)])
    assert not diff(one, one)
    two = ruleset([service_rules(svc(), [slc(ep("10.244.1.5"))], NODE)])
    cmds = diff(one, two).commands
    assert cmds == [
        "flush chain ip bosun svc-shop/web/tcp/80",
        "flush chain ip bosun ep-shop/web/tcp/80/10.244.1.6/8080",
        "add rule ip bosun svc-shop/web/tcp/80 numgen random mod 1 vmap "
        "{ 0 : goto ep-shop/web/tcp/80/10.244.1.5/8080 }",
        "delete chain ip bosun ep-shop/web/tcp/80/10.244.1.6/8080",
    ]
    # No endpoints left: chains go, the cluster IP moves to the reject map.
    none = ruleset([service_rules(svc(), [slc()], NODE)])
    cmds = diff(two, none).commands
    assert cmds.index("delete element ip bosun service-ips { 10.96.0.10 . tcp . 80 }") < \
        cmds.index("delete chain ip bosun svc-shop/web/tcp/80")
    assert "add element ip bosun no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }" in cmds


def test_removed_udp_endpoints_are_flushed() -> None:
    spec: Obj = {"ports": [{"name": "http", "port": 53, "protocol": "UDP"}]}
    old = ruleset([service_rules(svc(**spec), [slc(ep("10.244.1.5"), ep("10.244.1.6"), port=53, proto="UDP")],
                                 NODE)])
    new = ruleset([service_rules(svc(**spec), [slc(ep("10.244.1.6"), port=53, proto="UDP")], NODE)])
    assert diff(old, new).stale_udp == [("10.244.1.5", 53)]


def test_full_sync_recreates_the_table_with_the_pod_masquerade() -> None:
    net = NodeNetwork(cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16", pod_cidr="10.244.3.0/24")
    cmds = full(net, Ruleset()).commands
    assert cmds[:3] == ["add table ip bosun", "delete table ip bosun", "add table ip bosun"]
    assert "add rule ip bosun nat-postrouting ip saddr 10.244.3.0/24 ip daddr != " \
           "{ 10.244.0.0/16, 224.0.0.0/4 } masquerade" in cmds
    outside = base_commands(NodeNetwork("10.244.0.0/16", "10.96.0.0/16", "10.88.0.0/16"))
    assert any("{ 10.88.0.0/16, 10.244.0.0/16, 224.0.0.0/4 }" in c for c in outside)
