"""The cluster DNS records, over Service and EndpointSlice objects shaped as the API serves
them (a ClusterIP Service, a headless StatefulSet Service, an ExternalName, a pod with
hostname+subdomain), through the same index functions the node's informers use."""

from __future__ import annotations

from typing import Any

import pytest

from bosun.network.dns.records import (
    NOERROR,
    NXDOMAIN,
    SERVICE_INDEXES,
    SLICE_INDEXES,
    Answer,
    Records,
    Srv,
)

Obj = dict[str, Any]


class ListStore:
    """An informer's cache for a test: get by namespace/name, lookups by the real index functions."""

    def __init__(self, objs: list[Obj], indexes: dict[str, Any]) -> None:
        self.objs = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}
        self.indexes = indexes

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.objs.get((namespace, name))

    def by_index(self, name: str, value: str) -> list[Obj]:
        return [o for o in self.objs.values() if value in self.indexes[name](o)]


def service(ns: str, name: str, cluster_ip: str, ports: list[Obj] | None = None, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "uid": name},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip,
                     "clusterIPs": [cluster_ip] if cluster_ip != "None" else ["None"],
                     "ports": ports or [], **spec}}


def endpoint(ip: str, *, hostname: str = "", ready: bool | None = True, pod: str = "") -> Obj:
    ep: Obj = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready, "serving": ready},
               "nodeName": "n1", "targetRef": {"kind": "Pod", "name": pod or ip, "namespace": "shop"}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def slice_of(ns: str, svc: str, suffix: str, endpoints: list[Obj], ports: list[Obj]) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{svc}-{suffix}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc,
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "endpoints": endpoints, "ports": ports}


HTTP = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
SERVICES = [
    service("default", "kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}]),
    service("shop", "web", "10.96.0.20", [*HTTP, {"name": "metrics", "port": 9090, "protocol": "TCP"},
                                          {"port": 81, "protocol": "TCP"}]),
    service("shop", "db", "None", [{"name": "pg", "port": 5432, "protocol": "TCP"}]),
    service("shop", "frontdoor", "None", [{"name": "http", "port": 80}]),
    service("shop", "empty", "None", [{"name": "http", "port": 80}]),
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "search", "namespace": "shop"},
     "spec": {"type": "ExternalName", "externalName": "search.example.com"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias", "namespace": "shop"},
     "spec": {"type": "ExternalName", "externalName": "web.shop.svc.cluster.local"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "loop", "namespace": "shop"},
     "spec": {"type": "ExternalName", "externalName": "loop.shop.svc.cluster.local"}},
]
SLICES = [
    slice_of("shop", "web", "a1", [endpoint("10.244.1.5"), endpoint("10.244.2.7", ready=False)],
             [{"name": "http", "port": 8080, "protocol": "TCP"}]),
    slice_of("shop", "db", "b1", [endpoint("10.244.1.10", hostname="db-0", pod="db-0"),
                                  endpoint("10.244.2.11", hostname="db-1", pod="db-1", ready=None),
                                  endpoint("10.244.2.12", hostname="db-2", pod="db-2", ready=False)],
             [{"name": "pg", "port": 5432, "protocol": "TCP"}]),
    # A pod with hostname "api" and subdomain "frontdoor", and one without a hostname.
    slice_of("shop", "frontdoor", "c1", [endpoint("10.244.3.4", hostname="api"), endpoint("10.244.3.5")],
             [{"name": "http", "port": 8080, "protocol": "TCP"}]),
]


@pytest.fixture
def records() -> Records:
    return Records(ListStore(SERVICES, SERVICE_INDEXES), ListStore(SLICES, SLICE_INDEXES), domain="cluster.local",
                   service_cidr="10.96.0.0/16", cluster_cidr="10.244.0.0/16")


def ask(records: Records, name: str, qtype: str = "A") -> Answer:
    answer = records.lookup(name, qtype)
    assert answer is not None, f"{name} should be in the cluster's zones"
    return answer


def data(answer: Answer, rtype: str = "A") -> list[Any]:
    return [r.data for r in answer.answer if r.type == rtype]


def test_cluster_ip_service(records: Records) -> None:
    a = ask(records, "web.shop.svc.cluster.local.")
    assert a.rcode == NOERROR and data(a) == ["10.96.0.20"]
    assert a.answer[0].name == "web.shop.svc.cluster.local." and a.answer[0].ttl == 5
    assert data(ask(records, "kubernetes.default.svc.cluster.local")) == ["10.96.0.1"]


def test_names_are_case_insensitive(records: Records) -> None:
    assert data(ask(records, "WeB.ShOp.SVC.Cluster.LOCAL.")) == ["10.96.0.20"]
    assert data(ask(records, "DB-0.DB.shop.svc.cluster.local")) == ["10.244.1.10"]
    assert data(ask(records, "_HTTP._TCP.web.shop.svc.cluster.local", "SRV"), "SRV")


def test_headless_service_answers_its_ready_endpoints(records: Records) -> None:
    # db-2 is not ready; db-1's ready condition is unset, which the API defines as ready.
    assert data(ask(records, "db.shop.svc.cluster.local")) == ["10.244.1.10", "10.244.2.11"]


def test_headless_service_without_endpoints_exists_but_has_no_address(records: Records) -> None:
    a = ask(records, "empty.shop.svc.cluster.local")
    assert a.rcode == NOERROR and not a.answer and a.authority[0].type == "SOA"


def test_statefulset_and_subdomain_pod_names(records: Records) -> None:
    assert data(ask(records, "db-0.db.shop.svc.cluster.local")) == ["10.244.1.10"]
    assert data(ask(records, "db-1.db.shop.svc.cluster.local")) == ["10.244.2.11"]
    assert ask(records, "db-2.db.shop.svc.cluster.local").rcode == NXDOMAIN  # not ready
    assert ask(records, "db-9.db.shop.svc.cluster.local").rcode == NXDOMAIN
    assert data(ask(records, "api.frontdoor.shop.svc.cluster.local")) == ["10.244.3.4"]
    # An endpoint without a hostname is named by its dashed address.
    assert data(ask(records, "10-244-3-5.frontdoor.shop.svc.cluster.local")) == ["10.244.3.5"]
    # A ClusterIP Service has no per-endpoint names.
    assert ask(records, "10-244-1-5.web.shop.svc.cluster.local").rcode == NXDOMAIN


def test_srv_for_named_ports(records: Records) -> None:
    a = ask(records, "_http._tcp.web.shop.svc.cluster.local", "SRV")
    assert data(a, "SRV") == [Srv(0, 100, 80, "web.shop.svc.cluster.local.")]
    assert a.answer[0].name == "_http._tcp.web.shop.svc.cluster.local."
    assert [(r.name, r.data) for r in a.additional] == [("web.shop.svc.cluster.local.", "10.96.0.20")]
    # Headless: one per ready endpoint, targets named by hostname, the endpoint's port.
    a = ask(records, "_pg._tcp.db.shop.svc.cluster.local", "SRV")
    assert data(a, "SRV") == [Srv(0, 50, 5432, "db-0.db.shop.svc.cluster.local."),
                              Srv(0, 50, 5432, "db-1.db.shop.svc.cluster.local.")]
    assert {r.data for r in a.additional} == {"10.244.1.10", "10.244.2.11"}
    # The Service's own name answers SRV for every named port (not the unnamed 81).
    ports = sorted(s.port for s in data(ask(records, "web.shop.svc.cluster.local", "SRV"), "SRV"))
    assert ports == [80, 9090]
    assert ask(records, "_nope._tcp.web.shop.svc.cluster.local", "SRV").rcode == NXDOMAIN
    assert ask(records, "_http._udp.web.shop.svc.cluster.local", "SRV").rcode == NXDOMAIN
    # The protocol label alone is an empty non-terminal; an A query on the SRV name has no data.
    assert ask(records, "_tcp.web.shop.svc.cluster.local").rcode == NOERROR
    a = ask(records, "_http._tcp.web.shop.svc.cluster.local", "A")
    assert a.rcode == NOERROR and not a.answer


def test_external_name_is_a_cname(records: Records) -> None:
    a = ask(records, "search.shop.svc.cluster.local")
    assert [(r.type, r.data) for r in a.answer] == [("CNAME", "search.example.com.")]
    assert a.chase == "search.example.com."  # outside the cluster: resolved upstream by the server
    assert ask(records, "search.shop.svc.cluster.local", "CNAME").chase == ""
    # A target inside the cluster domain is followed here.
    a = ask(records, "alias.shop.svc.cluster.local")
    assert [(r.type, r.data) for r in a.answer] == [("CNAME", "web.shop.svc.cluster.local."),
                                                    ("A", "10.96.0.20")]
    a = ask(records, "loop.shop.svc.cluster.local")  # names itself: stops, no endless recursion
    assert a.answer and all(r.type == "CNAME" for r in a.answer)


def test_unknown_names_in_the_cluster_domain_are_nxdomain_with_soa(records: Records) -> None:
    for name in ("nope.shop.svc.cluster.local", "web.nowhere.svc.cluster.local", "x.y.web.shop.svc.cluster.local",
                 "nowhere.svc.cluster.local", "web.shop.cluster.local", "foo.cluster.local"):
        a = ask(records, name)
        assert a.rcode == NXDOMAIN and not a.answer, name
        assert [(r.name, r.type) for r in a.authority] == [("cluster.local.", "SOA")], name


def test_aaaa_and_other_types_of_existing_names_are_empty_noerror(records: Records) -> None:
    for name, qtype in (("web.shop.svc.cluster.local", "AAAA"), ("db-0.db.shop.svc.cluster.local", "AAAA"),
                        ("web.shop.svc.cluster.local", "MX"), ("shop.svc.cluster.local", "A"),
                        ("svc.cluster.local", "A"), ("cluster.local", "A")):
        a = ask(records, name, qtype)
        assert a.rcode == NOERROR and not a.answer and a.authority[0].type == "SOA", (name, qtype)
    assert data(ask(records, "cluster.local", "SOA"), "SOA") == ["ns.dns.cluster.local."]


def test_pod_dashed_names(records: Records) -> None:
    assert data(ask(records, "10-244-1-5.shop.pod.cluster.local")) == ["10.244.1.5"]
    assert ask(records, "192-168-0-1.shop.pod.cluster.local").rcode == NXDOMAIN  # not a pod address
    assert ask(records, "x.shop.pod.cluster.local").rcode == NXDOMAIN


def test_ptr_for_cluster_ips_and_pod_ips(records: Records) -> None:
    assert data(ask(records, "20.0.96.10.in-addr.arpa.", "PTR"), "PTR") == ["web.shop.svc.cluster.local."]
    assert data(ask(records, "1.0.96.10.IN-ADDR.ARPA", "PTR"), "PTR") == ["kubernetes.default.svc.cluster.local."]
    assert data(ask(records, "10.1.244.10.in-addr.arpa", "PTR"), "PTR") == ["db-0.db.shop.svc.cluster.local."]
    assert data(ask(records, "5.1.244.10.in-addr.arpa", "PTR"), "PTR") == ["10-244-1-5.web.shop.svc.cluster.local."]
    missing = ask(records, "99.9.96.10.in-addr.arpa", "PTR")
    assert missing.rcode == NXDOMAIN and missing.authority
    # Addresses outside the cluster's ranges belong to the upstream resolvers.
    assert records.lookup("1.1.168.192.in-addr.arpa", "PTR") is None
    assert records.lookup("96.10.in-addr.arpa", "PTR") is None


def test_names_outside_the_cluster_domain_are_not_ours(records: Records) -> None:
    for name in ("example.com", "local", "cluster.local.example.com", "notcluster.local"):
        assert records.lookup(name, "A") is None, name


def resolve(records: Records, name: str, namespace: str, *, ndots: int = 5) -> Answer | None:
    """What a pod's stub resolver does with Kubernetes' resolv.conf: names with fewer than
    ``ndots`` dots try the search list first, the first answer that is not NXDOMAIN wins."""
    search = [f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    tries = [f"{name}.{s}" for s in search] if name.count(".") < ndots and not name.endswith(".") else []
    for candidate in [*tries, name]:
        a = records.lookup(candidate, "A")
        if a is not None and a.rcode != NXDOMAIN:
            return a
    return None


def test_short_names_through_the_search_path(records: Records) -> None:
    assert data(resolve(records, "web", "shop") or Answer()) == ["10.96.0.20"]
    assert data(resolve(records, "web.shop", "default") or Answer()) == ["10.96.0.20"]
    assert data(resolve(records, "web.shop.svc", "default") or Answer()) == ["10.96.0.20"]
    assert data(resolve(records, "kubernetes.default", "shop") or Answer()) == ["10.96.0.1"]
    assert data(resolve(records, "db-0.db", "shop") or Answer()) == ["10.244.1.10"]
    assert resolve(records, "web", "default") is None  # no web Service in default
    # A full name with fewer than 5 dots also tries the search list first: each of those is a
    # fast NXDOMAIN from the node, never a trip upstream.
    for s in ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        a = records.lookup(f"web.shop.svc.cluster.local.{s}", "A")
        assert a is not None and a.rcode == NXDOMAIN
