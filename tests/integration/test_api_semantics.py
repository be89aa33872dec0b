"""Kubernetes REST semantics of the API server, through the bosun client over real HTTPS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import client_in, made_by_test

from bosun.api.registry import by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

NS = by_plural("", "v1", "namespaces")
PODS = by_plural("", "v1", "pods")
CMS = by_plural("", "v1", "configmaps")
DEPLOY = by_plural("apps", "v1", "deployments")
RS = by_plural("apps", "v1", "replicasets")
assert NS and PODS and CMS and DEPLOY and RS


@pytest.fixture
async def client(api_server: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(api_server, namespace, delete=True) as c:
        yield c


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}


async def test_create_sets_server_metadata_and_generate_name(client: Client, namespace: str) -> None:
    p = await client.create(PODS, pod("a"), namespace)
    m = p["metadata"]
    assert m["uid"] and m["creationTimestamp"] and int(m["resourceVersion"]) > 0
    assert p["status"]["phase"] == "Pending" and p["status"]["qosClass"] == "BestEffort"
    g = await client.create(CMS, {"metadata": {"generateName": "cfg-"}, "data": {}}, namespace)
    assert g["metadata"]["name"].startswith("cfg-") and len(g["metadata"]["name"]) == 9
    with pytest.raises(ApiError) as e:
        await client.create(PODS, pod("a"), namespace)
    assert e.value.status == 409 and e.value.reason == "AlreadyExists"


async def test_update_conflict_on_stale_resource_version(client: Client, namespace: str) -> None:
    c1 = await client.create(CMS, cm("x", a="1"), namespace)
    c2 = dict(c1, data={"a": "2"})
    updated = await client.update(CMS, c2)
    assert int(updated["metadata"]["resourceVersion"]) > int(c1["metadata"]["resourceVersion"])
    stale = dict(c1, data={"a": "3"})
    with pytest.raises(ApiError) as e:
        await client.update(CMS, stale)
    assert e.value.status == 409 and e.value.reason == "Conflict"
    assert (await client.get(CMS, "x", namespace))["data"] == {"a": "2"}


async def test_generation_bumps_on_spec_change_only(client: Client, namespace: str) -> None:
    d = await client.create(DEPLOY, deployment("g"), namespace)
    assert d["metadata"]["generation"] == 1
    d = await client.patch(DEPLOY, "g", {"metadata": {"labels": {"x": "y"}}}, namespace)
    assert d["metadata"]["generation"] == 1
    d = await client.patch(DEPLOY, "g", {"spec": {"replicas": 4}}, namespace)
    assert d["metadata"]["generation"] == 2
    # Status is not writable through the main resource, only through /status.
    d = await client.patch(DEPLOY, "g", {"status": {"replicas": 9}}, namespace)
    assert (d.get("status") or {}).get("replicas") is None
    d = await client.patch(DEPLOY, "g", {"status": {"replicas": 9}}, namespace, subresource="status")
    assert d["status"]["replicas"] == 9 and d["metadata"]["generation"] == 2


async def test_validation_errors_name_each_field_and_write_nothing(client: Client, namespace: str) -> None:
    bad = deployment("v", replicas=-3)
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiError) as e:
        await client.create(DEPLOY, bad, namespace)
    assert e.value.status == 422 and e.value.reason == "Invalid"
    assert "spec.replicas: Invalid value: -3: must be greater than or equal to 0" in e.value.message
    fields = {c["field"] for c in e.value.body["details"]["causes"]}
    assert "spec.replicas" in fields and any(f.startswith("spec.selector") or f.startswith("spec.template")
                                             for f in fields)
    with pytest.raises(ApiError) as e:
        await client.get(DEPLOY, "v", namespace)
    assert e.value.status == 404
    wrong_type = deployment("w")
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(ApiError) as e:
        await client.create(DEPLOY, wrong_type, namespace)
    assert e.value.status == 400 and "spec.replicas" in e.value.message


async def test_list_selectors_and_pagination(client: Client, namespace: str) -> None:
    for i in range(7):
        await client.create(PODS, pod(f"p{i}", tier="a" if i % 2 else "b"), namespace)
    page = await client.list(PODS, namespace, limit=3)
    assert [p["metadata"]["name"] for p in page["items"]] == ["p0", "p1", "p2"]
    names = [p["metadata"]["name"] for p in page["items"]]
    while page["metadata"].get("continue"):
        page = await client.list(PODS, namespace, limit=3, continue_=page["metadata"]["continue"])
        names += [p["metadata"]["name"] for p in page["items"]]
    assert names == [f"p{i}" for i in range(7)]
    a = await client.list(PODS, namespace, label_selector="tier=a")
    assert [p["metadata"]["name"] for p in a["items"]] == ["p1", "p3", "p5"]
    f = await client.list(PODS, namespace, field_selector="metadata.name=p4")
    assert [p["metadata"]["name"] for p in f["items"]] == ["p4"]
    with pytest.raises(ApiError) as e:
        await client.list(PODS, namespace, field_selector="spec.bogus=1")
    assert e.value.status == 400


async def test_watch_from_resource_version_sees_every_change(client: Client, namespace: str) -> None:
    start = (await client.list(CMS, namespace))["metadata"]["resourceVersion"]
    await client.create(CMS, cm("w1"), namespace)
    await client.patch(CMS, "w1", {"data": {"k": "v"}}, namespace)
    await client.delete(CMS, "w1", namespace)
    events: list[tuple[str, str]] = []

    async def collect() -> None:
        async for ev in client.watch(CMS, namespace, resource_version=start, timeout_seconds=5):
            events.append((ev["type"], ev["object"]["metadata"]["name"]))
            if len(events) == 3:
                return

    await asyncio.wait_for(collect(), 10)
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


async def test_watch_label_selector_turns_relabels_into_add_and_delete(client: Client, namespace: str) -> None:
    rv = (await client.list(CMS, namespace))["metadata"]["resourceVersion"]
    await client.create(CMS, cm("sel"), namespace)
    await client.patch(CMS, "sel", {"metadata": {"labels": {"pick": "me"}}}, namespace)
    await client.patch(CMS, "sel", {"metadata": {"labels": {"pick": "other"}}}, namespace)
    events: list[str] = []

    async def collect() -> None:
        async for ev in client.watch(CMS, namespace, resource_version=rv, label_selector="pick=me",
                                     timeout_seconds=5):
            events.append(ev["type"])
            if len(events) == 2:
                return

    await asyncio.wait_for(collect(), 10)
    assert events == ["ADDED", "DELETED"]


def test_restart_keeps_data_and_old_watch_is_gone(tmp_path: Path) -> None:
    """After a restart the objects are still there; a watch from before the server's
    history window gets 410 Gone (clients relist), a watch from now works."""
    from tests.conftest import start_server

    async def write(kc: str) -> str:
        async with Client.from_kubeconfig(kc) as c:
            for i in range(5):
                await c.create(CMS, cm(f"keep{i}"), "default")
            return str((await c.list(CMS, "default"))["metadata"]["resourceVersion"])

    async def check(kc: str, old_rv: str) -> None:
        async with Client.from_kubeconfig(kc) as c:
            listed = await c.list(CMS, "default")
            names = [o["metadata"]["name"] for o in made_by_test(listed["items"])]
            assert names == [f"keep{i}" for i in range(5)]
            assert int(listed["metadata"]["resourceVersion"]) >= int(old_rv)
            # The control plane writes its Lease at stop and start: watch from now.
            now_rv = str(listed["metadata"]["resourceVersion"])
            with pytest.raises(ApiError) as e:
                async for _ in c.watch(CMS, "default", resource_version="1", timeout_seconds=2):
                    pass
            assert e.value.status == 410
            got: list[str] = []

            async def follow() -> None:
                async for ev in c.watch(CMS, "default", resource_version=now_rv, timeout_seconds=5):
                    got.append(f'{ev["type"]} {ev["object"]["metadata"]["name"]}')
                    return

            task = asyncio.create_task(follow())
            await asyncio.sleep(0.3)
            await c.create(CMS, cm("late"), "default")
            await asyncio.wait_for(task, 10)
            assert got == ["ADDED late"]

    first = start_server(tmp_path / "srv")
    try:
        rv = asyncio.run(write(first.kubeconfig))
    finally:
        first.stop()
    second = start_server(tmp_path / "srv")
    try:
        asyncio.run(check(second.kubeconfig, rv))
    finally:
        second.stop()


async def test_dry_run_writes_nothing(client: Client, namespace: str) -> None:
    out = await client.create(CMS, cm("dry"), namespace, dry_run=True)
    assert out["metadata"]["name"] == "dry"
    with pytest.raises(ApiError) as e:
        await client.get(CMS, "dry", namespace)
    assert e.value.status == 404


async def test_finalizers_hold_deletion_until_removed(client: Client, namespace: str) -> None:
    obj = cm("fin")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create(CMS, obj, namespace)
    await client.delete(CMS, "fin", namespace)
    held = await client.get(CMS, "fin", namespace)
    assert held["metadata"]["deletionTimestamp"]
    await client.patch(CMS, "fin", {"metadata": {"finalizers": None}}, namespace)
    with pytest.raises(ApiError) as e:
        await client.get(CMS, "fin", namespace)
    assert e.value.status == 404


async def test_propagation_policies_mark_owner(client: Client, namespace: str) -> None:
    # A finalizer of the user's own keeps the owner visible while the GC does its part.
    held = deployment("fg")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create(DEPLOY, held, namespace)
    d = await client.delete(DEPLOY, "fg", namespace, propagation_policy="Foreground")
    assert "foregroundDeletion" in d["metadata"]["finalizers"] and d["metadata"]["deletionTimestamp"]
    await client.patch(DEPLOY, "fg", {"metadata": {"finalizers": None}}, namespace)
    await client.create(DEPLOY, deployment("bg"), namespace)
    await client.delete(DEPLOY, "bg", namespace, propagation_policy="Background")
    with pytest.raises(ApiError):
        await client.get(DEPLOY, "bg", namespace)


async def test_pod_on_node_is_deleted_gracefully(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("gr"), namespace)
    await client.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "gr"},
                               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}},
                        namespace, subresource="binding")
    bound = await client.get(PODS, "gr", namespace)
    assert bound["spec"]["nodeName"] == "node-1"
    with pytest.raises(ApiError) as e:  # bound once only
        await client.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "gr"},
                                   "target": {"kind": "Node", "name": "node-2"}}, namespace, subresource="binding")
    assert e.value.status == 409
    await client.delete(PODS, "gr", namespace)
    terminating = await client.get(PODS, "gr", namespace)
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    await client.delete(PODS, "gr", namespace, grace_period_seconds=0)
    with pytest.raises(ApiError):
        await client.get(PODS, "gr", namespace)


async def test_scale_subresource(client: Client, namespace: str) -> None:
    await client.create(DEPLOY, deployment("sc", 2), namespace)
    scale = await client.get(DEPLOY, "sc", namespace, subresource="scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=sc"
    scale["spec"]["replicas"] = 6
    await client.update(DEPLOY, scale, subresource="scale") if "name" in scale["metadata"] else None
    assert (await client.get(DEPLOY, "sc", namespace))["spec"]["replicas"] == 6


async def test_terminating_namespace_refuses_new_content(client: Client, namespace: str) -> None:
    obj = cm("hold")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create(CMS, obj, namespace)
    await client.delete(NS, namespace)
    ns = await client.get(NS, namespace)
    assert ns["status"]["phase"] == "Terminating"
    await asyncio.sleep(0.2)
    with pytest.raises(ApiError) as e:
        await client.create(CMS, cm("new"), namespace)
    assert e.value.status == 403 and "being terminated" in e.value.message
    await client.patch(CMS, "hold", {"metadata": {"finalizers": None}}, namespace)
    for _ in range(100):
        try:
            await client.get(NS, namespace)
        except ApiError as exc:
            assert exc.status == 404
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("namespace was not removed after its content was gone")


async def test_bad_requests(api_server: RunningServer, client: Client, namespace: str) -> None:
    url = f"{api_server.url}/api/v1/namespaces/{namespace}/configmaps"
    import ssl

    ctx = ssl.create_default_context(cafile=api_server.ca_path)
    hdr = {"Authorization": f"Bearer {api_server.token}"}
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=b"{not json", headers={**hdr, "Content-Type": "application/json"},
                          ssl=ctx) as r:
            body = await r.json()
            assert r.status == 400 and body["kind"] == "Status" and body["reason"] == "BadRequest"
        async with s.post(url, data=b"a: [unclosed", headers={**hdr, "Content-Type": "application/yaml"},
                          ssl=ctx) as r:
            assert r.status == 400
        big = b'{"metadata":{"name":"big"},"data":{"x":"' + b"a" * (3 * 1024 * 1024) + b'"}}'
        async with s.post(url, data=big, headers={**hdr, "Content-Type": "application/json"}, ssl=ctx) as r:
            assert r.status == 413
        async with s.get(f"{api_server.url}/api/v1/namespaces/{namespace}/widgets", headers=hdr, ssl=ctx) as r:
            assert r.status == 404 and (await r.json())["kind"] == "Status"
        async with s.get(f"{api_server.url}/apis/nope.example.com/v1/things", headers=hdr, ssl=ctx) as r:
            assert r.status == 404
        async with s.get(url, ssl=ctx) as r:
            assert r.status == 401 and (await r.json())["reason"] == "Unauthorized"
        async with s.get(url, headers={"Authorization": "Bearer wrong"}, ssl=ctx) as r:
            assert r.status == 401
        async with s.get(f"{api_server.url}/readyz", ssl=ctx) as r:
            assert r.status == 200
    with pytest.raises(ApiError) as e:
        await client.create(DEPLOY, {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "metadata": {"name": "Not_DNS"}, "spec": deployment("x")["spec"]}, namespace)
    assert e.value.status == 422 and "metadata.name" in e.value.message
    with pytest.raises(ApiError) as e:
        await client.create(CMS, {"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
                            namespace)
    assert e.value.status == 400


def replicaset_owned_by(owner: dict[str, Any], name: str) -> dict[str, Any]:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name}, "spec": deployment(name)["spec"]}
    rs["metadata"]["ownerReferences"] = [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
    }]
    return rs


async def gone(client: Client, res: Any, name: str, namespace: str, seconds: float = 10) -> bool:
    for _ in range(int(seconds * 20)):
        try:
            await client.get(res, name, namespace)
        except ApiError as exc:
            if exc.status == 404:
                return True
            raise
        await asyncio.sleep(0.05)
    return False


async def test_garbage_collection_background_foreground_orphan(client: Client, namespace: str) -> None:
    # Background: the owner goes at once, its dependents right after.
    owner = await client.create(DEPLOY, deployment("bg-owner"), namespace)
    await client.create(RS, replicaset_owned_by(owner, "bg-dep"), namespace)
    await client.delete(DEPLOY, "bg-owner", namespace, propagation_policy="Background")
    assert await gone(client, RS, "bg-dep", namespace)
    # Foreground: dependents go first, then the owner.
    owner = await client.create(DEPLOY, deployment("fg-owner"), namespace)
    await client.create(RS, replicaset_owned_by(owner, "fg-dep"), namespace)
    await client.delete(DEPLOY, "fg-owner", namespace, propagation_policy="Foreground")
    assert await gone(client, RS, "fg-dep", namespace)
    assert await gone(client, DEPLOY, "fg-owner", namespace)
    # Orphan: the owner goes, dependents stay without the reference.
    owner = await client.create(DEPLOY, deployment("or-owner"), namespace)
    await client.create(RS, replicaset_owned_by(owner, "or-dep"), namespace)
    await client.delete(DEPLOY, "or-owner", namespace, propagation_policy="Orphan")
    assert await gone(client, DEPLOY, "or-owner", namespace)
    kept = await client.get(RS, "or-dep", namespace)
    assert not kept["metadata"].get("ownerReferences")


SVCS = by_plural("", "v1", "services")
assert SVCS


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


async def test_services_get_unique_cluster_ips_and_node_ports(client: Client, namespace: str) -> None:
    kube = await client.get(SVCS, "kubernetes", "default")
    assert kube["spec"]["clusterIP"] == "10.96.0.1"
    a = await client.create(SVCS, service("a"), namespace)
    ip = a["spec"]["clusterIP"]
    assert ip.startswith("10.96.") and a["spec"]["clusterIPs"] == [ip]
    assert a["spec"]["ports"][0]["targetPort"] == 80
    with pytest.raises(ApiError) as e:
        await client.create(SVCS, service("b", clusterIP=ip), namespace)
    assert e.value.status == 422 and "provided IP is already allocated" in e.value.message
    headless = await client.create(SVCS, service("h", clusterIP="None"), namespace)
    assert headless["spec"]["clusterIP"] == "None"
    np = await client.create(SVCS, service("np", type="NodePort"), namespace)
    port = np["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    dup = service("np2", type="NodePort")
    dup["spec"]["ports"][0]["nodePort"] = port
    with pytest.raises(ApiError) as e:
        await client.create(SVCS, dup, namespace)
    assert e.value.status == 422 and "provided port is already allocated" in e.value.message
    outside = service("np4", type="NodePort")
    outside["spec"]["ports"][0]["nodePort"] = 80
    with pytest.raises(ApiError) as e:
        await client.create(SVCS, outside, namespace)
    assert e.value.status == 422 and "spec.ports[0].nodePort" in e.value.message
    assert "not in the valid range" in e.value.message
    # Updates keep the allocation; deleting gives it back.
    again = await client.patch(SVCS, "a", {"metadata": {"labels": {"x": "y"}}}, namespace)
    assert again["spec"]["clusterIP"] == ip
    await client.delete(SVCS, "a", namespace)
    await client.delete(SVCS, "np", namespace)
    reused = await client.create(SVCS, service("c", clusterIP=ip), namespace)
    assert reused["spec"]["clusterIP"] == ip
    dup["metadata"]["name"] = "np3"
    assert (await client.create(SVCS, dup, namespace))["spec"]["ports"][0]["nodePort"] == port


async def test_watch_sends_bookmarks_with_current_version(
    client: Client, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bosun.api import watch as watch_mod

    monkeypatch.setattr(watch_mod, "BOOKMARK_INTERVAL", 0.2)
    rv = (await client.list(CMS, namespace))["metadata"]["resourceVersion"]
    created = await client.create(CMS, cm("bm"), namespace)
    types: list[str] = []
    bookmark_rv = 0

    async def collect() -> None:
        nonlocal bookmark_rv
        async for ev in client.watch(CMS, namespace, resource_version=rv, timeout_seconds=5):
            types.append(ev["type"])
            if ev["type"] == "BOOKMARK":
                bookmark_rv = int(ev["object"]["metadata"]["resourceVersion"])
                return

    await asyncio.wait_for(collect(), 10)
    assert types[0] == "ADDED" and types[-1] == "BOOKMARK"
    assert bookmark_rv >= int(created["metadata"]["resourceVersion"])


PCS = by_plural("scheduling.k8s.io", "v1", "priorityclasses")
assert PCS


async def test_priority_admission_from_priority_class(client: Client, namespace: str) -> None:
    cls = f"{namespace}-high"
    await client.create(PCS, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                              "metadata": {"name": cls}, "value": 1000, "preemptionPolicy": "Never"})
    try:
        p = pod("prio")
        p["spec"]["priorityClassName"] = cls
        created = await client.create(PODS, p, namespace)
        assert created["spec"]["priority"] == 1000 and created["spec"]["preemptionPolicy"] == "Never"
        crit = pod("crit")
        crit["spec"]["priorityClassName"] = "system-node-critical"
        assert (await client.create(PODS, crit, namespace))["spec"]["priority"] == 2000001000
        missing = pod("missing")
        missing["spec"]["priorityClassName"] = "no-such-class"
        with pytest.raises(ApiError) as e:
            await client.create(PODS, missing, namespace)
        assert e.value.status == 403 and "no PriorityClass with name no-such-class" in e.value.message
    finally:
        await client.delete(PCS, cls)


async def test_pod_with_zero_termination_grace_is_deleted_at_once(client: Client, namespace: str) -> None:
    p = pod("zero")
    p["spec"]["terminationGracePeriodSeconds"] = 0
    p["spec"]["nodeName"] = "node-1"
    await client.create(PODS, p, namespace)
    await client.delete(PODS, "zero", namespace)
    with pytest.raises(ApiError) as e:
        await client.get(PODS, "zero", namespace)
    assert e.value.status == 404


async def test_concurrent_patches_without_version_all_apply(client: Client, namespace: str) -> None:
    """Patches carry no resourceVersion: the server retries its read-modify-write on
    conflicts, so twenty concurrent patches all land and none is lost."""
    await client.create(CMS, cm("busy"), namespace)
    await asyncio.gather(*(client.patch(CMS, "busy", {"metadata": {"labels": {f"l{i}": "x"}}}, namespace)
                           for i in range(20)))
    labels = (await client.get(CMS, "busy", namespace))["metadata"]["labels"]
    assert set(labels) == {f"l{i}" for i in range(20)}
    with pytest.raises(ApiError) as e:  # a patch that names a stale version is a precondition
        await client.patch(CMS, "busy", {"metadata": {"resourceVersion": "1", "labels": {"z": "z"}}}, namespace)
    assert e.value.status == 409


async def test_large_bodies_arrive_whole(client: Client, namespace: str) -> None:
    """A 1 MiB object arrives in many TCP reads and is stored whole."""
    size = 1024 * 1024 - 100  # just under a ConfigMap's 1 MiB limit
    big = cm("large", blob="x" * size)
    created = await client.create(CMS, big, namespace)
    assert len(created["data"]["blob"]) == size
    created["data"]["blob"] = "y" * size
    updated = await client.update(CMS, created)
    assert updated["data"]["blob"][:3] == "yyy"


async def test_generated_name_collision_draws_another(
    client: Client, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bosun.api import storage as storage_mod

    await client.create(CMS, cm("cfg-aaaaa"), namespace)
    names = iter(["cfg-aaaaa", "cfg-bbbbb"])
    monkeypatch.setattr(storage_mod, "generated_name", lambda prefix: next(names))
    made = await client.create(CMS, {"metadata": {"generateName": "cfg-"}, "data": {}}, namespace)
    assert made["metadata"]["name"] == "cfg-bbbbb"


async def test_quantities_are_stored_and_returned_in_canonical_form(client: Client, namespace: str) -> None:
    body = pod("q")
    body["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": ".5", "memory": "1.5Gi"}, "requests": {"cpu": 0.5, "memory": 1610612736}}
    body["spec"]["overhead"] = {"cpu": "1000m", "memory": "2000"}
    created = await client.create(PODS, body, namespace)
    want = {"limits": {"cpu": "500m", "memory": "1536Mi"}, "requests": {"cpu": "500m", "memory": "1610612736"}}
    assert created["spec"]["containers"][0]["resources"] == want
    got = await client.get(PODS, "q", namespace)
    assert got["spec"]["containers"][0]["resources"] == want
    assert got["spec"]["overhead"] == {"cpu": "1", "memory": "2k"}
    # Requests equal to limits by value, whatever the text: Guaranteed, as upstream says.
    assert got["status"]["qosClass"] == "Guaranteed"


async def test_new_pods_tolerate_failed_nodes_for_the_eviction_timeout(client: Client, namespace: str) -> None:
    created = await client.create(PODS, pod("t"), namespace)
    tolerations = created["spec"]["tolerations"]
    assert {(t["key"], t["effect"], t["operator"]) for t in tolerations} == {
        ("node.kubernetes.io/not-ready", "NoExecute", "Exists"),
        ("node.kubernetes.io/unreachable", "NoExecute", "Exists")}
    seconds = {t["tolerationSeconds"] for t in tolerations}
    assert len(seconds) == 1 and isinstance(next(iter(seconds)), int)
    # A pod's own toleration of one of the taints is kept, and only the other is added.
    own = pod("own")
    own["spec"]["tolerations"] = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                   "effect": "NoExecute", "tolerationSeconds": 7}]
    created = await client.create(PODS, own, namespace)
    assert [(t["key"], t.get("tolerationSeconds")) for t in created["spec"]["tolerations"]] == [
        ("node.kubernetes.io/unreachable", 7), ("node.kubernetes.io/not-ready", seconds.pop())]
