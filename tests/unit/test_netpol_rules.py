"""NetworkPolicy semantics as data: which local pods are isolated, what their rules allow,
and the nftables transaction that moves from one state to the next."""

from __future__ import annotations

from typing import Any

from bosun.network.policy import render
from bosun.network.policy.rules import PodRules, Ports, pod_rules

Obj = dict[str, Any]


def pod(name: str, ns: str, ip: str, labels: dict[str, str] | None = None, node: str = "n1",
        ports: list[Obj] | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec},
            "status": {"phase": "Running", "podIP": ip}}


def ns(name: str, **labels: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def policy(name: str, namespace: str, spec: Obj) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


WEB = pod("web", "shop", "10.244.1.2", {"app": "web"}, ports=[{"name": "http", "containerPort": 8080}])
API = pod("api", "shop", "10.244.2.2", {"app": "api"}, node="n2")
DB = pod("db", "shop", "10.244.1.3", {"app": "db"})
OTHER = pod("x", "other", "10.244.2.9", {"app": "api"}, node="n2")
NAMESPACES = [ns("shop", team="a"), ns("other", team="b")]
PODS = [WEB, API, DB, OTHER]


def rules_for(policies: list[Obj], local: list[Obj] | None = None) -> dict[str, PodRules]:
    local = [p for p in PODS if p["spec"]["nodeName"] == "n1"] if local is None else local
    return {r.ip: r for r in pod_rules(local, PODS, NAMESPACES, policies)}


def test_unselected_pods_are_not_isolated() -> None:
    out = rules_for([policy("p", "shop", {"podSelector": {"matchLabels": {"app": "db"}}})])
    assert set(out) == {"10.244.1.3"}
    assert out["10.244.1.3"].ingress == ()  # default deny: isolated with no rule
    assert out["10.244.1.3"].egress is None  # policyTypes inferred: Ingress only


def test_pod_and_namespace_selectors_resolve_to_addresses() -> None:
    spec = {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                         "ports": [{"port": 5432}]},
                        {"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]}
    db = rules_for([policy("p", "shop", spec)])["10.244.1.3"]
    assert db.ingress is not None
    same_ns, other_ns = db.ingress
    assert same_ns.peers == frozenset({"10.244.2.2"})  # only the api pod of its own namespace
    assert same_ns.ports == (Ports("tcp", 5432, 5432),)
    assert other_ns.peers == frozenset({"10.244.2.9"})


def test_ip_blocks_named_ports_and_egress() -> None:
    spec = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": "http"}, {"port": 9000, "endPort": 9010, "protocol": "UDP"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}]}]}
    out = rules_for([policy("p", "shop", spec)])
    web = out["10.244.1.2"]
    assert web.ingress is not None and web.egress is not None
    assert web.ingress[0].peers is None
    assert web.ingress[0].ports == (Ports("tcp", 8080, 8080), Ports("udp", 9000, 9010))
    # db has no port named http: only the UDP range remains for it
    db = out["10.244.1.3"]
    assert db.ingress is not None and db.ingress[0].ports == (Ports("udp", 9000, 9010),)
    assert web.egress[0].blocks == (("192.168.0.0/16", ("192.168.1.0/24",)),)


def test_policies_of_other_namespaces_and_finished_pods_do_not_count() -> None:
    done = pod("done", "shop", "10.244.1.9", {"app": "db"})
    done["status"]["phase"] = "Succeeded"
    out = rules_for([policy("p", "other", {"podSelector": {}})], local=[WEB, DB, done])
    assert out == {}


def test_render_and_diff_send_only_what_changed() -> None:
    allow_api = {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                              "ports": [{"port": 5432}]}]}
    first = render.wanted(pod_rules([DB], PODS, NAMESPACES, [policy("p", "shop", allow_api)]))
    (chain,) = first.chains
    assert first.chains[chain] == ["ip saddr 10.244.2.2 meta l4proto tcp th dport 5432 return", "drop"]
    assert first.elements["policy-ingress"] == {"10.244.1.3": chain}
    cmds = render.transaction(render.Wanted(), first)
    assert f"add element ip bosun policy-ingress {{ 10.244.1.3 : jump {chain} }}" in cmds
    assert render.transaction(first, first) == []
    # a second api pod appears: only that chain is rewritten, the map is untouched
    more = [*PODS, pod("api2", "shop", "10.244.2.3", {"app": "api"}, node="n2")]
    second = render.wanted(pod_rules([DB], more, NAMESPACES, [policy("p", "shop", allow_api)]))
    cmds = render.transaction(first, second)
    assert f"flush chain ip bosun {chain}" in cmds
    assert not any("element" in c for c in cmds)
    assert f"add rule ip bosun {chain} ip saddr {{ 10.244.2.2, 10.244.2.3 }} meta l4proto tcp th dport 5432 return" \
        in cmds
    # the policy goes: the element first, then the chain
    cmds = render.transaction(second, render.Wanted())
    assert cmds[0].startswith("delete element ip bosun policy-ingress")
    assert cmds[-1] == f"delete chain ip bosun {chain}"
