"""Endpoints follow the pods a Service selects, as Service proxies and DNS need them: ready and
not-ready addresses apart, named target ports resolved per pod, deleted pods and terminating
pods gone, user-managed Endpoints left alone."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import client_in, eventually

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource

PODS = resource("", "v1", "pods")
SERVICES = resource("", "v1", "services")
ENDPOINTS = resource("", "v1", "endpoints")
NAMESPACES = resource("", "v1", "namespaces")
SLICES = resource("discovery.k8s.io", "v1", "endpointslices")

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["endpoints", "endpointslice"], scheduler=False, lease_duration=4.0)
    yield from served(tmp_path_factory.mktemp("endpoints"), options=options)


@pytest.fixture
async def client(plane: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(plane, namespace, delete=True) as c:
        yield c


async def until(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """helpers.eventually, reading a 404 (the controller has not written it yet) as "not yet"."""
    async def present() -> Any:
        try:
            return await check()
        except ApiError as e:
            if e.status != 404:
                raise
            return None
    return await eventually(present, within)


def pod(name: str, labels: dict[str, str], web_port: int, node: str = "node-a") -> Obj:
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{
                "name": "app", "image": "nginx",
                "ports": [{"name": "web", "containerPort": web_port}, {"name": "dns", "containerPort": 53,
                                                                        "protocol": "UDP"}]}]}}


async def run_pod(c: Client, ns: str, name: str, ip: str, ready: bool) -> None:
    """Report the pod running (with an IP) as its node agent would."""
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    await c.patch(PODS, name, {"status": status}, ns, subresource="status")


def summary(ep: Obj) -> set[tuple[str, str, tuple[tuple[str, int, str], ...]]]:
    """{(ready|notready, ip, ports)} of an Endpoints object."""
    out = set()
    for s in ep.get("subsets") or []:
        ports = tuple(sorted((p.get("name", ""), p["port"], p["protocol"]) for p in s.get("ports") or []))
        for a in s.get("addresses") or []:
            out.add(("ready", a["ip"], ports))
        for a in s.get("notReadyAddresses") or []:
            out.add(("notready", a["ip"], ports))
    return out


SVC_PORTS = [{"name": "http", "port": 80, "targetPort": "web"},
             {"name": "metrics", "port": 9090, "targetPort": 9100},
             {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}]


async def test_endpoints_follow_readiness_named_ports_and_deletion(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    await c.create(SERVICES, {"metadata": {"name": "web", "labels": {"tier": "front"}},
                              "spec": {"selector": {"app": "web"}, "ports": SVC_PORTS}}, ns)
    # No pods yet: the Endpoints exists, empty.
    ep = await until(lambda: c.get(ENDPOINTS, "web", ns))
    assert not ep.get("subsets")
    assert ep["metadata"]["labels"]["tier"] == "front"

    await c.create(PODS, pod("a", {"app": "web"}, 8080), ns)
    await c.create(PODS, pod("b", {"app": "web"}, 8081), ns)
    await c.create(PODS, pod("no-ip", {"app": "web"}, 8080), ns)
    await c.create(PODS, pod("other", {"app": "db"}, 8080), ns)
    await run_pod(c, ns, "a", "10.1.0.1", ready=True)
    await run_pod(c, ns, "b", "10.1.0.2", ready=False)
    await run_pod(c, ns, "other", "10.1.0.9", ready=True)

    ports_a = (("dns", 53, "UDP"), ("http", 8080, "TCP"), ("metrics", 9100, "TCP"))
    ports_b = (("dns", 53, "UDP"), ("http", 8081, "TCP"), ("metrics", 9100, "TCP"))
    want = {("ready", "10.1.0.1", ports_a), ("notready", "10.1.0.2", ports_b)}

    async def converged(expected: set[Any]) -> Obj | None:
        got = await c.get(ENDPOINTS, "web", ns)
        return got if summary(got) == expected else None

    ep = await until(lambda: converged(want))
    addr = next(a for s in ep["subsets"] for a in s.get("addresses") or [])
    assert addr["nodeName"] == "node-a"
    assert addr["targetRef"]["kind"] == "Pod" and addr["targetRef"]["name"] == "a"
    assert addr["targetRef"]["namespace"] == ns and addr["targetRef"]["uid"]

    # Readiness flips move the address between the lists.
    await run_pod(c, ns, "b", "10.1.0.2", ready=True)
    await run_pod(c, ns, "a", "10.1.0.1", ready=False)
    await until(lambda: converged({("notready", "10.1.0.1", ports_a), ("ready", "10.1.0.2", ports_b)}))

    # A pod that loses the label leaves; a terminating pod leaves; a deleted pod leaves.
    await c.patch(PODS, "a", {"metadata": {"labels": {"app": "other"}}}, ns)
    await until(lambda: converged({("ready", "10.1.0.2", ports_b)}))
    await c.create(PODS, pod("c", {"app": "web"}, 8080), ns)
    await run_pod(c, ns, "c", "10.1.0.3", ready=True)
    await until(lambda: converged({("ready", "10.1.0.2", ports_b), ("ready", "10.1.0.3", ports_a)}))
    await c.delete(PODS, "c", ns)  # bound to a node: stays Terminating for its grace period
    assert (await c.get(PODS, "c", ns))["metadata"].get("deletionTimestamp")
    await until(lambda: converged({("ready", "10.1.0.2", ports_b)}))
    await c.delete(PODS, "b", ns, grace_period_seconds=0)
    await until(lambda: converged(set()))

    # A pod that gets its IP late joins then.
    await run_pod(c, ns, "no-ip", "10.1.0.4", ready=True)
    await until(lambda: converged({("ready", "10.1.0.4", ports_a)}))


async def test_headless_publish_not_ready_and_named_port_missing(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    await c.create(SERVICES, {"metadata": {"name": "db"},
                              "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                                       "selector": {"app": "db"},
                                       "ports": [{"name": "sql", "port": 5432, "targetPort": "sql"}]}}, ns)
    # Pod "x" has no port named "sql": it cannot receive this Service's traffic.
    x = pod("x", {"app": "db"}, 8080)
    y = pod("y", {"app": "db"}, 8080)
    y["spec"]["containers"][0]["ports"].append({"name": "sql", "containerPort": 5433})
    y["spec"]["hostname"] = "y"
    y["spec"]["subdomain"] = "db"
    await c.create(PODS, x, ns)
    await c.create(PODS, y, ns)
    await run_pod(c, ns, "x", "10.2.0.1", ready=False)
    await run_pod(c, ns, "y", "10.2.0.2", ready=False)

    async def converged() -> Obj | None:
        got = await c.get(ENDPOINTS, "db", ns)
        return got if summary(got) == {("ready", "10.2.0.2", (("sql", 5433, "TCP"),))} else None

    ep = await until(converged)
    assert ep["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert ep["subsets"][0]["addresses"][0]["hostname"] == "y"


async def test_user_endpoints_left_alone_and_managed_ones_deleted_with_service(
        client: Client, namespace: str, plane: RunningServer) -> None:
    c, ns = client, namespace
    await c.create(SERVICES, {"metadata": {"name": "external"}, "spec": {"ports": [{"port": 80}]}}, ns)
    mine = {"metadata": {"name": "external"},
            "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 80, "protocol": "TCP"}]}]}
    await c.create(ENDPOINTS, mine, ns)
    await c.create(SERVICES, {"metadata": {"name": "web"},
                              "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}, ns)
    await c.create(PODS, pod("a", {"app": "web"}, 8080), ns)
    await run_pod(c, ns, "a", "10.3.0.1", ready=True)

    async def web_ready() -> bool:
        return summary(await c.get(ENDPOINTS, "web", ns)) == {("ready", "10.3.0.1", (("", 80, "TCP"),))}

    await until(web_ready)
    # By the time the selector Service converged, the user's object has been seen and kept.
    ext = await c.get(ENDPOINTS, "external", ns)
    assert summary(ext) == {("ready", "192.0.2.10", (("", 80, "TCP"),))}
    assert "endpoints.kubernetes.io/managed-by" not in (ext["metadata"].get("labels") or {})
    # The API server's own `kubernetes` Endpoints is not rewritten either.
    kube = await c.get(SERVICES, "kubernetes", "default")
    assert not kube["spec"].get("selector")

    # kubectl shows the address users expect.
    cmd = ["/usr/bin/kubectl", "--kubeconfig", plane.kubeconfig, "-n", ns, "get", "endpoints", "web", "-o", "json"]
    out = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)["subsets"][0]["addresses"][0]["ip"] == "10.3.0.1"

    # A managed Endpoints deleted by hand comes back.
    await c.delete(ENDPOINTS, "web", ns)
    await until(web_ready)

    await c.delete(SERVICES, "web", ns)

    async def gone() -> bool:
        try:
            await c.get(ENDPOINTS, "web", ns)
        except ApiError as e:
            return e.status == 404
        return False

    await until(gone)


async def slices_of(c: Client, ns: str, svc: str) -> list[Obj]:
    items: list[Obj] = (await c.list(SLICES, ns, label_selector=f"kubernetes.io/service-name={svc}"))["items"]
    return items


async def test_endpointslices_chunked_stable_and_terminating(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    svc = await c.create(SERVICES, {"metadata": {"name": "big"},
                                    "spec": {"selector": {"app": "big"},
                                             "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}}, ns)

    async def placeholder() -> list[Obj] | None:
        got = await slices_of(c, ns, "big")
        return got if len(got) == 1 and not got[0].get("endpoints") else None

    (empty,) = await until(placeholder)
    assert empty["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    assert empty["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert empty["addressType"] == "IPv4"

    n = 130

    async def one(i: int) -> None:
        await c.create(PODS, pod(f"p{i}", {"app": "big"}, 8080), ns)
        await run_pod(c, ns, f"p{i}", f"10.4.{i // 250}.{i % 250 + 1}", ready=True)

    await asyncio.gather(*(one(i) for i in range(n)))

    async def chunked() -> list[Obj] | None:
        got = await slices_of(c, ns, "big")
        sizes = sorted(len(s.get("endpoints") or []) for s in got)
        return got if sum(sizes) == n and max(sizes) <= 100 else None

    got = await until(chunked, 20)
    assert len(got) == 2
    for s in got:
        assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        for ep in s["endpoints"]:
            assert ep["conditions"] == {"ready": True, "serving": True, "terminating": False}
            assert ep["targetRef"]["kind"] == "Pod" and ep["nodeName"] == "node-a"

    # One pod changing rewrites only the slice it is in.
    where = next(s for s in got if any(e["targetRef"]["name"] == "p7" for e in s["endpoints"]))
    other = next(s for s in got if s is not where)
    await c.delete(PODS, "p7", ns)  # bound to a node: Terminating for its grace period

    async def terminating() -> Obj | None:
        for s in await slices_of(c, ns, "big"):
            for ep in s.get("endpoints") or []:
                if ep["targetRef"]["name"] == "p7" and ep["conditions"]["terminating"]:
                    return s
        return None

    now_where = await until(terminating)
    ep = next(e for e in now_where["endpoints"] if e["targetRef"]["name"] == "p7")
    assert ep["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert now_where["metadata"]["name"] == where["metadata"]["name"]
    current_other = await c.get(SLICES, other["metadata"]["name"], ns)
    assert current_other["metadata"]["resourceVersion"] == other["metadata"]["resourceVersion"]

    await c.delete(SERVICES, "big", ns)
    await until(lambda: _none(slices_of(c, ns, "big")))


async def _none(coro: Awaitable[list[Obj]]) -> bool:
    return not await coro


def test_endpoints_capped_at_1000_addresses_ready_first() -> None:
    from bosun.controllers.endpoints import truncate_subsets

    def addrs(prefix: str, n: int) -> list[Obj]:
        return [{"ip": f"{prefix}.{i}"} for i in range(n)]

    subsets = [{"addresses": addrs("10.0", 900), "notReadyAddresses": addrs("10.1", 50), "ports": [{"port": 1}]},
               {"addresses": addrs("10.2", 300), "ports": [{"port": 2}]}]
    out, truncated = truncate_subsets(subsets)
    assert truncated
    assert [len(s.get("addresses") or []) for s in out] == [750, 250]
    assert not any(s.get("notReadyAddresses") for s in out)
    assert [s["ports"] for s in out] == [[{"port": 1}], [{"port": 2}]]
    assert truncate_subsets(subsets[1:]) == (subsets[1:], False)
