"""Lists served from the watch cache, through the real server over HTTPS: read-your-writes,
the resourceVersion/resourceVersionMatch semantics and their refusals as upstream answers
them, paging with a selector, and many concurrent listers of many objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import client_in, made_by_test, namespace_furnished

from bosun.api.registry import by_plural
from bosun.api.server import APIServer
from bosun.client.errors import ApiError
from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client, resource_path
from bosun.client.transport import LocalTransport

NS = by_plural("", "v1", "namespaces")
CMS = by_plural("", "v1", "configmaps")
PODS = by_plural("", "v1", "pods")
assert NS and CMS and PODS


@pytest.fixture
async def client(api_server: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(api_server, namespace, delete=True) as c:
        yield c


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
            "data": {"k": name}}


async def list_cms(client: Client, namespace: str, **params: Any) -> dict[str, Any]:
    return await client.request("GET", resource_path(CMS, namespace), params=params)


async def test_a_list_after_a_write_sees_it(client: Client, namespace: str) -> None:
    for i in range(10):
        made = await client.create(CMS, cm(f"c{i}"), namespace)
        got = await client.list(CMS, namespace)
        assert made in got["items"]
        assert int(got["metadata"]["resourceVersion"]) >= int(made["metadata"]["resourceVersion"])
        changed = await client.patch(CMS, f"c{i}", {"data": {"k": "new"}}, namespace)
        got = await client.list(CMS, namespace)
        assert changed in got["items"]


async def test_resource_versions_any_not_older_than_and_exact(client: Client, namespace: str) -> None:
    first = await client.create(CMS, cm("a"), namespace)
    before = (await client.list(CMS, namespace))["metadata"]["resourceVersion"]
    await client.patch(CMS, "a", {"data": {"k": "later"}}, namespace)
    await client.create(CMS, cm("b"), namespace)
    latest = await client.list(CMS, namespace)
    assert [o["data"]["k"] for o in made_by_test(latest["items"])] == ["later", "b"]
    any_ = await list_cms(client, namespace, resourceVersion="0")
    assert [o["metadata"]["name"] for o in made_by_test(any_["items"])] == ["a", "b"]
    newer = await list_cms(client, namespace, resourceVersion=before, resourceVersionMatch="NotOlderThan")
    assert newer["items"] == latest["items"]
    exact = await list_cms(client, namespace, resourceVersion=before, resourceVersionMatch="Exact")
    assert exact["metadata"]["resourceVersion"] == before
    assert made_by_test(exact["items"]) == [first]


@pytest.mark.parametrize(("params", "code", "message"), [
    ({"resourceVersionMatch": "Exact"}, 422, "resourceVersionMatch is forbidden unless resourceVersion is provided"),
    ({"resourceVersion": "1", "resourceVersionMatch": "Newest"}, 422,
     'resourceVersionMatch: Unsupported value: "Newest": supported values: "Exact", "NotOlderThan", ""'),
    ({"resourceVersion": "0", "resourceVersionMatch": "Exact"}, 422,
     'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
    ({"resourceVersion": "1", "resourceVersionMatch": "Exact", "continue": "eyJydiI6MX0"}, 422,
     "resourceVersionMatch is forbidden when continue is provided"),
    ({"continue": "not-a-token"}, 400, "continue key is not valid"),
    ({"resourceVersion": "abc"}, 400, "invalid resource version"),
    ({"limit": "-1"}, 400, "limit"),
])
async def test_bad_list_options_are_refused_as_upstream(
    client: Client, namespace: str, params: dict[str, str], code: int, message: str,
) -> None:
    with pytest.raises(ApiError) as exc:
        await list_cms(client, namespace, **params)
    assert exc.value.status == code and message in exc.value.message
    if code == 422:
        assert exc.value.message.startswith('ListOptions.meta.k8s.io "" is invalid: ')
        assert exc.value.body["details"]["causes"][0]["field"] == "resourceVersionMatch"


async def test_pages_with_a_selector_are_one_snapshot(client: Client, namespace: str) -> None:
    await asyncio.gather(*(client.create(CMS, cm(f"c{i:02d}", tier="web" if i % 3 else "db"), namespace)
                           for i in range(30)))
    want = sorted(f"c{i:02d}" for i in range(30) if i % 3)
    got: list[str] = []
    page = await client.list(CMS, namespace, label_selector="tier=web", limit=4)
    rv = page["metadata"]["resourceVersion"]
    await client.create(CMS, cm("c99", tier="web"), namespace)  # after the first page: not in this list
    await client.delete(CMS, want[-1], namespace)               # deleted meanwhile: still in it
    while True:
        got += [o["metadata"]["name"] for o in page["items"]]
        assert page["metadata"]["resourceVersion"] == rv
        token = page["metadata"].get("continue")
        if not token:
            break
        page = await client.list(CMS, namespace, label_selector="tier=web", limit=4, continue_=token)
    assert got == want


async def test_pages_count_the_items_left_unless_a_selector_filters(client: Client, namespace: str) -> None:
    await asyncio.gather(*(client.create(CMS, cm(f"c{i:02d}", tier="web" if i % 2 else "db"), namespace)
                           for i in range(10)))
    left: list[int | None] = []
    page = await client.list(CMS, namespace, limit=4)
    while True:
        left.append(page["metadata"].get("remainingItemCount"))
        token = page["metadata"].get("continue")
        if not token:
            break
        page = await client.list(CMS, namespace, limit=4, continue_=token)
    assert left == [7, 3, None]  # 10 and the namespace's kube-root-ca.crt
    filtered = await client.list(CMS, namespace, label_selector="tier=web", limit=2)
    assert filtered["metadata"].get("continue") and "remainingItemCount" not in filtered["metadata"]
    table = await client.request("GET", resource_path(CMS, namespace), params={"limit": 3},
                                 accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert table["kind"] == "Table" and table["metadata"]["remainingItemCount"] == 8


async def test_pods_of_a_node_by_field_selector(client: Client, namespace: str) -> None:
    def pod(name: str, node: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
        if node:
            spec["nodeName"] = node
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}

    for name, node in (("a", "n1"), ("b", "n2"), ("c", "n1"), ("d", "")):
        await client.create(PODS, pod(name, node), namespace)
    on_n1 = await client.list(PODS, namespace, field_selector="spec.nodeName=n1")
    assert [o["metadata"]["name"] for o in on_n1["items"]] == ["a", "c"]
    unbound = await client.list(PODS, namespace, field_selector="spec.nodeName=")
    assert [o["metadata"]["name"] for o in unbound["items"]] == ["d"]


async def test_sixteen_listers_of_many_objects_get_no_server_error(
    api_server: RunningServer, client: Client, namespace: str,
) -> None:
    count = 600
    sem = asyncio.Semaphore(32)

    async def make(i: int) -> None:
        async with sem:
            await client.create(CMS, cm(f"m{i:04d}", app="load"), namespace)

    await asyncio.gather(*(make(i) for i in range(count)))
    listers = [Client.from_kubeconfig(api_server.kubeconfig) for _ in range(16)]
    failures: list[str] = []
    writes = 0

    async def lister(c: Client) -> None:
        for _ in range(3):
            try:
                got = await c.list(CMS, namespace, label_selector="app=load")
            except ApiError as exc:
                failures.append(f"{exc.status} {exc.message}")
                continue
            if len(got["items"]) < count:
                failures.append(f"{len(got['items'])} items")

    async def writer() -> None:
        nonlocal writes
        for i in range(20):  # writes while the lists are served: each list still sees them all
            await client.create(CMS, cm(f"w{i:02d}", app="load"), namespace)
            writes += 1

    try:
        await asyncio.gather(writer(), *(lister(c) for c in listers))
    finally:
        for c in listers:
            await c.close()
    assert failures == [] and writes == 20
    final = await client.list(CMS, namespace, label_selector="app=load")
    assert len(final["items"]) == count + 20


def test_a_large_list_arrives_whole_over_http_and_in_process(api_server: RunningServer, namespace: str) -> None:
    """A list over a megabyte is written a chunk at a time: both transports get all of it."""
    async def go() -> None:
        server = api_server.server if isinstance(api_server.server, APIServer) else api_server.server.api
        assert server.local is not None
        cfg = load_kubeconfig(api_server.kubeconfig)
        http, local = Client(cfg), Client(cfg, transport=LocalTransport(server.local))
        try:
            await http.create(NS, {"metadata": {"name": namespace}})
            await namespace_furnished(http, namespace)
            big = "x" * 200_000
            made = [await http.create(CMS, {"metadata": {"name": f"big{i}"}, "data": {"v": big}}, namespace)
                    for i in range(8)]
            for c in (http, local):
                got = await c.list(CMS, namespace)
                assert made_by_test(got["items"]) == made and got["kind"] == "ConfigMapList"
                page = await c.list(CMS, namespace, limit=6)
                assert made_by_test(page["items"]) == made[:6] and page["metadata"]["continue"]
        finally:
            await http.delete(NS, namespace)
            await http.close()
            await local.close()

    api_server.call(go(), timeout=60)
