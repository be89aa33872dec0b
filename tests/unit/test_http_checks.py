"""What HTTP checks a node makes: a pod's own (``bosun.io/http-check``), and a Service's at each
of the node's pods that is a ready endpoint of it (selector, readiness, named target ports),
each at its ``bosun.io/http-check-interval``; and that a check is made when it is due, against
a real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bosun.agent.httpcheck import HttpChecker, Target, interval_of, service_url, targets
from bosun.agent.servicecheck import check_target, cluster_ip_url, owner, slice_urls

Obj = dict[str, object]


def pod(name: str, labels: dict[str, str], *, ready: bool = True, ip: str = "10.1.0.5",
        annotations: dict[str, str] | None = None, ns: str = "shop") -> Obj:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels,
                         "annotations": annotations or {}},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080},
                                                             {"name": "admin", "containerPort": 9090}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def service(annotations: dict[str, str], *, target_port: object = "http", ns: str = "shop",
            selector: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"name": "web", "namespace": ns, "annotations": annotations},
            "spec": {"selector": {"app": "web"} if selector is None else selector,
                     "ports": [{"port": 80, "targetPort": target_port}]}}


def test_service_checks_hit_each_ready_selected_pod() -> None:
    svc = service({"bosun.io/http-check": "/healthz"})
    assert service_url(svc, pod("a", {"app": "web"})) == "http://10.1.0.5:8080/healthz"  # the named target port
    assert service_url(svc, pod("b", {"app": "web"}, ready=False)) is None  # not an endpoint
    assert service_url(svc, pod("c", {"app": "db"})) is None  # not selected
    assert service_url(svc, pod("d", {"app": "web"}, ns="dev")) is None  # another namespace
    assert service_url(service({"bosun.io/http-check": "ready"}, target_port=7000),
                       pod("a", {"app": "web"}, ip="fd00::5")) == "http://[fd00::5]:7000/ready"
    assert service_url(service({"bosun.io/http-check": "/", "bosun.io/http-check-port": "admin"}),
                       pod("a", {"app": "web"})) == "http://10.1.0.5:9090/"
    assert service_url(service({"bosun.io/http-check": "/"}, target_port="nope"), pod("a", {"app": "web"})) is None
    assert service_url(service({}), pod("a", {"app": "web"})) is None  # no check asked
    assert service_url(service({"bosun.io/http-check": "/"}, selector={}), pod("a", {"app": "web"})) is None


def test_targets_and_intervals() -> None:
    pods = [pod("a", {"app": "web"}, annotations={"bosun.io/http-check": "/own", "bosun.io/http-check-interval": "2s"}),
            pod("b", {"app": "web"})]
    svc = service({"bosun.io/http-check": "/healthz", "bosun.io/http-check-interval": "1m"})
    got = targets(pods, [svc, service({})], 10.0)
    assert got == [
        Target("uid-a", "http://10.1.0.5:8080/own", (("url", "http://10.1.0.5:8080/own"),), 2.0),
        Target("uid-a", "http://10.1.0.5:8080/healthz",
               (("service", "web"), ("url", "http://10.1.0.5:8080/healthz")), 60.0),
        Target("uid-b", "http://10.1.0.5:8080/healthz",
               (("service", "web"), ("url", "http://10.1.0.5:8080/healthz")), 60.0)]
    assert [interval_of({"bosun.io/http-check-interval": v}, 10.0) for v in ("15", "500ms", "soon", "1.5m", "")] == [
        15.0, 1.0, 10.0, 90.0, 10.0]


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[int, list[str]]]:
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=200 if request.path == "/healthz" else 503)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, hits
    finally:
        await runner.cleanup()


async def test_checks_run_when_due_and_report_per_pod(endpoint: tuple[int, list[str]]) -> None:
    port, hits = endpoint
    pods = [pod("a", {"app": "web"}, ip="127.0.0.1"), pod("b", {"app": "web"}, ip="127.0.0.1")]
    services = [service({"bosun.io/http-check": "/healthz", "bosun.io/http-check-interval": "5s"}, target_port=port),
                {**service({"bosun.io/http-check": "/down"}, target_port=port),
                 "metadata": {"name": "down", "namespace": "shop",
                              "annotations": {"bosun.io/http-check": "/down", "bosun.io/http-check-interval": "20s"}}}]
    checker = HttpChecker(lambda: pods, interval=10.0, list_services=lambda: services)
    try:
        assert await checker.check_all(now=100.0) == 4  # two services at two endpoints
        assert sorted(hits) == ["/down", "/down", "/healthz", "/healthz"]
        assert await checker.check_all(now=103.0) == 0  # nothing due yet
        assert await checker.check_all(now=105.0) == 2  # the 5 s ones
        assert await checker.check_all(now=120.0) == 4
        samples = {(s["name"], s["labels"]["service"]): s["value"] for s in checker.for_pod("uid-a")}
        assert samples[("probe_success", "web")] == 1.0 and samples[("probe_http_status_code", "down")] == 503.0
        assert samples[("probe_success", "down")] == 0.0 and 0 < samples[("probe_duration_seconds", "web")] < 5
        pods.pop()  # b is gone: its results too
        await checker.check_all(now=200.0)
        assert checker.for_pod("uid-b") == [] and checker.for_pod("uid-a")
    finally:
        await checker.close()


def node(name: str, ready: bool = True) -> Obj:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def endpoint_slice(service_name: str, addresses: list[tuple[str, bool | None]], ports: list[Obj],
                   ns: str = "shop") -> Obj:
    return {"metadata": {"name": f"{service_name}-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [a], **({} if r is None else {"conditions": {"ready": r}})}
                          for a, r in addresses]}


def test_service_address_and_selectorless_endpoints_fall_to_one_ready_node() -> None:
    by_ip = {**service({"bosun.io/http-check": "/healthz", "bosun.io/http-check-target": "service"}),
             "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.20",
                      "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "admin", "port": 81}]}}
    assert cluster_ip_url(by_ip) == "http://10.96.0.20:80/healthz"
    admin = {**by_ip, "metadata": {**by_ip["metadata"], "annotations": {  # type: ignore[dict-item]
        "bosun.io/http-check": "/", "bosun.io/http-check-port": "admin"}}}
    assert cluster_ip_url(admin) == "http://10.96.0.20:81/"
    assert cluster_ip_url({**by_ip, "spec": {"clusterIP": "None", "ports": []}}) is None  # headless
    assert cluster_ip_url({**by_ip, "spec": {"clusterIP": "fd00::20", "ports": [{"port": 8080}]}}) == \
        "http://[fd00::20]:8080/healthz"
    # "service": the endpoints are not checked at their pods any more; "both": they are.
    assert service_url(by_ip, pod("a", {"app": "web"})) is None
    both = {**by_ip, "metadata": {**by_ip["metadata"], "annotations": {  # type: ignore[dict-item]
        "bosun.io/http-check": "/healthz", "bosun.io/http-check-target": "both"}}}
    assert service_url(both, pod("a", {"app": "web"})) == "http://10.1.0.5:8080/healthz"
    assert check_target(service({"bosun.io/http-check-target": "sideways"})) == "endpoints"

    # A Service without a selector: the ready addresses of the slices its user wrote.
    external = service({"bosun.io/http-check": "/ping", "bosun.io/http-check-port": "web"}, selector={})
    slices = [endpoint_slice("web", [("192.0.2.1", True), ("192.0.2.2", False), ("192.0.2.3", None)],
                             [{"name": "metrics", "port": 9100}, {"name": "web", "port": 8000}]),
              endpoint_slice("web", [("192.0.2.9", True)], [{"name": "web", "port": 8000}], ns="other"),
              endpoint_slice("db", [("192.0.2.7", True)], [{"name": "web", "port": 5432}])]
    assert slice_urls(external, slices) == ["http://192.0.2.1:8000/ping", "http://192.0.2.3:8000/ping"]
    first_port = service({"bosun.io/http-check": "/ping"}, selector={})
    assert slice_urls(first_port, slices[:1]) == ["http://192.0.2.1:9100/ping", "http://192.0.2.3:9100/ping"]

    # One Ready node makes these checks, the same one whichever node asks; a NotReady one never.
    nodes = [node("n1"), node("n2"), node("n3"), node("n4", ready=False)]
    owners = {owner(s, nodes, me) for s in (by_ip,) for me in ("n1", "n2", "n3", "n4")}
    assert len(owners) == 1 and owners <= {"n1", "n2", "n3"}
    spread = {owner({"metadata": {"name": f"s{i}", "namespace": "shop"}}, nodes, "n1") for i in range(40)}
    assert spread == {"n1", "n2", "n3"}
    assert owner(by_ip, [], "lonely") == "lonely"  # no Ready node known: this one does it
    mine = owner(external, nodes, "n1")
    got = targets([], [external, by_ip, service({"bosun.io/http-check": "/"})], 10.0, slices=slices, nodes=nodes,
                  node_name=mine)
    urls = {t.url for t in got}
    assert {"http://192.0.2.1:8000/ping", "http://192.0.2.3:8000/ping"} <= urls
    assert all(t.uid == "" and dict(t.labels)["service"] == "web" and dict(t.labels)["namespace"] == "shop"
               for t in got)
    others = [n for n in ("n1", "n2", "n3") if n != mine]
    assert not any("192.0.2" in t.url for n in others
                   for t in targets([], [external], 10.0, slices=slices, nodes=nodes, node_name=n))


async def test_service_level_checks_report_as_the_nodes(endpoint: tuple[int, list[str]]) -> None:
    port, hits = endpoint
    svc = service({"bosun.io/http-check": "/healthz"}, selector={})
    slices = [endpoint_slice("web", [("127.0.0.1", True)], [{"port": port}])]
    checker = HttpChecker(list, interval=10.0, list_services=lambda: [svc], list_slices=lambda: slices,
                          list_nodes=lambda: [node("n1")], node_name="n1")
    try:
        assert await checker.check_all(now=100.0) == 1 and hits == ["/healthz"]
        samples = {s["name"]: (s["labels"], s["value"]) for s in checker.for_node()}
        assert samples["probe_success"] == ({"namespace": "shop", "service": "web",
                                             "url": f"http://127.0.0.1:{port}/healthz"}, 1.0)
        # Not this node's (another Ready node wins the Service): no check here.
        other = HttpChecker(list, list_services=lambda: [svc], list_slices=lambda: slices,
                            list_nodes=lambda: [node("n1"), node("n2")], node_name="n1")
        picked = owner(svc, [node("n1"), node("n2")], "n1")
        other.node_name = "n2" if picked == "n1" else "n1"
        assert await other.check_all(now=100.0) == 0 and other.for_node() == []
        await other.close()
    finally:
        await checker.close()
