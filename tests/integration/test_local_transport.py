"""A component-style client on the in-process transport gets exactly the answers, errors,
warnings and metrics that the same calls get over HTTPS from the same server.

Every scenario runs on the server's own event loop (where ``bosun server`` runs its
components), once per transport on objects of its own, and compares what a caller sees.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import named, namespace_furnished

from bosun.api.server import APIServer
from bosun.client import ApiError, Client
from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import TRANSPORT_ERRORS
from bosun.client.transport import LocalTransport

Obj = dict[str, Any]
VOLATILE = {"uid", "resourceVersion", "creationTimestamp", "time"}  # time: managedFields' second
TOKEN_VOLUME = re.compile(r"kube-api-access-[a-z0-9]{5}")


CM = named("configmaps")
NS = named("namespaces")
PODS = named("pods")
DEPLOY = named("deployments")


def api_of(running: RunningServer) -> APIServer:
    server = running.server
    return server if isinstance(server, APIServer) else server.api


def clients(running: RunningServer, token: str | None = "keep") -> tuple[Client, Client]:
    """(over HTTPS, in-process) as the same user."""
    cfg = load_kubeconfig(running.kubeconfig)
    if token != "keep":
        cfg = dataclasses.replace(cfg, token=token)
    local = api_of(running).local
    assert local is not None
    return Client(cfg), Client(cfg, transport=LocalTransport(local))


def norm(value: Any, name: str) -> Any:
    """What must match across the two runs: volatile metadata dropped, the run's own
    names replaced by a placeholder."""
    if isinstance(value, dict):
        return {norm(k, name): norm(v, name) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [norm(v, name) for v in value]
    if isinstance(value, str):  # the token volume's name ends in 5 random characters
        return TOKEN_VOLUME.sub("kube-api-access-(random)", value.replace(name, "NAME"))
    return value


def on_loop(running: RunningServer, fn: Callable[[], Awaitable[Any]]) -> Any:
    return running.call(fn(), timeout=60)


async def both(running: RunningServer, scenario: Callable[[Client, str], Awaitable[Any]]) -> tuple[Any, Any]:
    """The scenario's result over HTTPS and in-process, normalised for comparison."""
    http, local = clients(running)
    out = []
    try:
        for c in (http, local):
            ns = f"t-{uuid.uuid4().hex[:10]}"
            await c.create(NS, {"metadata": {"name": ns}})
            await namespace_furnished(c, ns)
            try:
                out.append(norm(await scenario(c, ns), ns))
            finally:
                await c.delete(NS, ns)
    finally:
        await http.close()
        await local.close()
    return out[0], out[1]


async def crud(c: Client, ns: str) -> list[Any]:
    seen: list[Any] = []
    cm = await c.create(CM, {"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}}, ns)
    seen.append(cm)
    seen.append(await c.get(CM, "a", ns))
    lst = await c.list(CM, ns, label_selector="x=1")
    seen.append([lst["kind"], lst["items"]])
    seen.append(await c.patch(CM, "a", {"data": {"m": "1"}}, ns, patch_type="merge"))
    seen.append(await c.patch(CM, "a", {"data": {"s": "2"}}, ns, patch_type="strategic"))
    seen.append(await c.patch(CM, "a", [{"op": "add", "path": "/data/j", "value": "3"}], ns, patch_type="json"))
    cur = await c.get(CM, "a", ns)
    cur["data"]["u"] = "4"
    seen.append(await c.update(CM, cur))
    seen.append(await c.delete(CM, "a", ns))
    with pytest.raises(ApiError) as err:
        await c.get(CM, "a", ns)
    seen.append(err.value.status)
    return seen


async def pod_binding_status(c: Client, ns: str) -> list[Any]:
    seen: list[Any] = []
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    seen.append(await c.create(PODS, pod, ns))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    seen.append(await c.create(PODS, binding, ns, subresource="binding"))
    got = await c.get(PODS, "p", ns)
    seen.append(got["spec"].get("nodeName"))
    got["status"] = {"phase": "Running", "podIP": "10.0.0.9"}
    st = await c.update(PODS, got, subresource="status")
    seen.append(st["status"])
    patched = await c.patch(PODS, "p", {"status": {"message": "hi"}}, ns, subresource="status")
    seen.append(patched["status"])
    dep = {"metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
           "template": {"metadata": {"labels": {"a": "b"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    seen.append(await c.create(DEPLOY, dep, ns))
    seen.append(await c.get(DEPLOY, "d", ns, subresource="scale"))
    seen.append(await c.delete(PODS, "p", ns, grace_period_seconds=0))
    return seen


async def error_cases(c: Client, ns: str) -> list[Any]:
    seen: list[Any] = []

    async def refused(call: Awaitable[Any]) -> None:
        with pytest.raises(ApiError) as err:
            await call
        seen.append((err.value.status, err.value.reason, err.value.message, err.value.body))

    await refused(c.get(CM, "missing", ns))  # 404
    cm = await c.create(CM, {"metadata": {"name": "a"}, "data": {"k": "v"}}, ns)
    await refused(c.create(CM, {"metadata": {"name": "a"}}, ns))  # 409 AlreadyExists
    await c.patch(CM, "a", {"data": {"k": "w"}}, ns)
    await refused(c.update(CM, cm))  # 409 Conflict: stale resourceVersion
    await refused(c.create(PODS, {"metadata": {"name": "bad"}, "spec": {"containers": []}}, ns))  # 422
    await refused(c.patch(CM, "a", [{"op": "frobnicate", "path": "/data"}], ns, patch_type="json"))  # 422
    await refused(c.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/a", body=b"{not json",
                            content_type="application/merge-patch+json"))  # 400 malformed
    await refused(c.request("GET", "/api/v1/nosuchthings"))  # 404 from routing
    await refused(c.request("PUT", "/api/v1/namespaces"))  # 405
    return seen


def test_same_answers_for_crud_and_patches(api_server: RunningServer) -> None:
    http, local = on_loop(api_server, lambda: both(api_server, crud))
    assert local == http
    assert http[-1] == 404


def test_same_answers_for_binding_status_and_scale(api_server: RunningServer) -> None:
    http, local = on_loop(api_server, lambda: both(api_server, pod_binding_status))
    assert local == http
    assert http[2] == "node-1"


def test_same_errors_with_the_same_status(api_server: RunningServer) -> None:
    http, local = on_loop(api_server, lambda: both(api_server, error_cases))
    assert local == http
    assert [e[0] for e in http] == [404, 409, 409, 422, 422, 400, 404, 405]


def test_unauthenticated_and_bad_token_are_refused_like_over_https(api_server: RunningServer) -> None:
    async def scenario() -> list[Any]:
        seen = []
        for token in (None, "not-a-token"):
            for c in clients(api_server, token=token):
                try:
                    with pytest.raises(ApiError) as err:
                        await c.list(CM, "default")
                    seen.append((err.value.status, err.value.reason, err.value.message))
                finally:
                    await c.close()
        return seen

    seen = on_loop(api_server, scenario)
    assert seen[0][0] == 401
    assert len(set(seen)) == 1, seen


def test_warnings_and_status_codes_are_the_transports_answer(api_server: RunningServer) -> None:
    """At the transport seam itself: an unknown field draws the same Warning header and 201."""
    async def scenario() -> list[tuple[int, str | None, Obj]]:
        out = []
        http, local = clients(api_server)
        try:
            for c in (http, local):
                name = f"w-{uuid.uuid4().hex[:8]}"
                body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                                     "data": {"k": "v"}, "bogus": 1})
                hdrs = {**c._headers, "Content-Type": "application/json", "Accept": "application/json"}
                status, headers, raw = await c.transport.request(
                    "POST", "/api/v1/namespaces/default/configmaps", {}, body, hdrs)
                await c.delete(CM, name, "default")
                out.append((status, headers.get("Warning"), norm(orjson.loads(raw), name)))
        finally:
            await http.close()
            await local.close()
        return out

    via_http, via_local = on_loop(api_server, scenario)
    assert via_http[0] == 201
    assert via_http[1] and "bogus" in via_http[1]
    assert via_local == via_http


def test_local_requests_are_counted_in_metrics(api_server: RunningServer) -> None:
    def count(text: str) -> float:
        total = 0.0
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{") and 'resource="configmaps"' in line \
                    and 'verb="GET"' in line and 'code="404"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    async def scenario() -> tuple[float, float]:
        http, local = clients(api_server)
        try:
            before = count((await http.request_raw("GET", "/metrics", accept="text/plain")).decode())
            # GETs of a missing ConfigMap: no controller makes those (the namespace controller
            # LISTs configmaps while earlier tests' namespaces go).
            for _ in range(5):
                with pytest.raises(ApiError):
                    await local.get(CM, f"absent-{uuid.uuid4().hex[:8]}", "default")
            after = count((await http.request_raw("GET", "/metrics", accept="text/plain")).decode())
            return before, after
        finally:
            await http.close()
            await local.close()

    before, after = on_loop(api_server, scenario)
    assert after - before == 5


def test_watch_in_process_sees_events_and_ends_at_timeout(api_server: RunningServer) -> None:
    async def scenario() -> list[tuple[str, str]]:
        _, local = clients(api_server)
        ns = f"t-{uuid.uuid4().hex[:10]}"
        try:
            await local.create(NS, {"metadata": {"name": ns}})
            await namespace_furnished(local, ns)
            page = await local.list(CM, ns)
            rv = page["metadata"]["resourceVersion"]

            async def writer() -> None:
                await local.create(CM, {"metadata": {"name": "a"}}, ns)
                await local.patch(CM, "a", {"data": {"k": "v"}}, ns)
                await local.delete(CM, "a", ns)

            task = asyncio.create_task(writer())
            seen = []
            async for ev in local.watch(CM, ns, resource_version=rv, timeout_seconds=2, allow_bookmarks=False):
                seen.append((ev["type"], ev["object"]["metadata"]["name"]))
            await task
            await local.delete(NS, ns)
            return seen
        finally:
            await local.close()

    assert on_loop(api_server, scenario) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_error_status_is_the_same_in_process(api_server: RunningServer) -> None:
    async def scenario() -> list[Any]:
        out = []
        for c in clients(api_server):
            try:
                with pytest.raises(ApiError) as err:
                    async for _ in c.watch(CM, "default", resource_version="not-a-number"):
                        pass
                out.append((err.value.status, err.value.reason, err.value.message))
            finally:
                await c.close()
        return out

    via_http, via_local = on_loop(api_server, scenario)
    assert via_http[0] == 400
    assert via_local == via_http


def test_stopped_server_refuses_local_requests_as_unreachable(fresh_server: RunningServer) -> None:
    async def scenario() -> tuple[bool, bool]:
        _, local = clients(fresh_server)
        watching = asyncio.Event()

        async def watch() -> BaseException | None:
            try:
                async for ev in local.watch(CM, "default", timeout_seconds=60):
                    watching.set()
                    del ev
            except TRANSPORT_ERRORS as exc:
                return exc
            return None

        await local.create(CM, {"metadata": {"name": "x"}}, "default")
        task = asyncio.create_task(watch())
        await asyncio.wait_for(watching.wait(), 10)
        await api_of(fresh_server).stop()
        ended = await asyncio.wait_for(task, 10)
        try:
            await local.list(CM, "default")
            refused = False
        except TRANSPORT_ERRORS:
            refused = True
        return isinstance(ended, BaseException), refused

    assert on_loop(fresh_server, scenario) == (True, True)


def test_a_cancelled_caller_does_not_cut_a_write_short(api_server: RunningServer) -> None:
    """As over HTTP (aiohttp lets a handler finish when its client goes away): a component
    cancelled mid-request leaves the server to complete the write it had sent."""
    async def scenario() -> Obj:
        _, local = clients(api_server)
        name = f"c-{uuid.uuid4().hex[:8]}"
        try:
            task = asyncio.create_task(local.create(CM, {"metadata": {"name": name}, "data": {"k": "v"}}, "default"))
            await asyncio.sleep(0)  # the request is on its way
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):
                try:
                    got: Obj = await local.get(CM, name, "default")
                    await local.delete(CM, name, "default")
                    return got
                except ApiError as exc:
                    assert exc.status == 404
                await asyncio.sleep(0.02)
            raise AssertionError("the cancelled create never completed")
        finally:
            await local.close()

    assert on_loop(api_server, scenario)["data"] == {"k": "v"}


def test_control_plane_components_use_the_local_transport(
    cluster: RunningServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bosun.controlplane import ControlPlane, ControlPlaneOptions

    assert isinstance(cluster.server, ControlPlane)
    assert cluster.server.client is not None
    assert isinstance(cluster.server.client.transport, LocalTransport)
    monkeypatch.setenv("BOSUN_LOCAL_TRANSPORT", "0")
    assert ControlPlaneOptions().local_transport is False
    monkeypatch.delenv("BOSUN_LOCAL_TRANSPORT")
    assert ControlPlaneOptions().local_transport is True


def test_shared_object_watch_sees_what_the_json_watch_sees(api_server: RunningServer) -> None:
    """An in-process informer may take the server's own objects instead of JSON lines: the
    events, their order and their objects are the same as over the JSON stream."""
    async def scenario() -> tuple[list[Any], list[Any]]:
        _, local = clients(api_server)
        ns = f"t-{uuid.uuid4().hex[:10]}"
        try:
            await local.create(NS, {"metadata": {"name": ns}})
            await namespace_furnished(local, ns)
            rv = (await local.list(CM, ns))["metadata"]["resourceVersion"]
            await local.create(CM, {"metadata": {"name": "a"}}, ns)
            await local.patch(CM, "a", {"data": {"k": "v"}}, ns)
            await local.delete(CM, "a", ns)
            runs = []
            for shared in (False, True):
                runs.append([(ev["type"], ev["object"]) async for ev in local.watch(
                    CM, ns, resource_version=rv, timeout_seconds=1, allow_bookmarks=False, shared_objects=shared)])
            await local.delete(NS, ns)
            return runs[0], runs[1]
        finally:
            await local.close()

    as_json, shared = on_loop(api_server, scenario)
    assert [t for t, _ in as_json] == ["ADDED", "MODIFIED", "DELETED"]
    assert shared == as_json


def test_a_modified_shared_object_is_reported_when_the_server_stops(fresh_server: RunningServer) -> None:
    """The objects handed to in-process informers are the watch cache's own: modifying one
    would leak into later writes, so the test suite's servers check at stop that none was."""
    async def scenario() -> None:
        _, local = clients(fresh_server)
        try:
            rv = (await local.list(CM, "default"))["metadata"]["resourceVersion"]
            await local.create(CM, {"metadata": {"name": "shared"}, "data": {"k": "v"}}, "default")
            async for ev in local.watch(CM, "default", resource_version=rv, timeout_seconds=1, shared_objects=True):
                ev["object"]["data"]["k"] = "changed by a careless consumer"
                break
        finally:
            await local.close()

    on_loop(fresh_server, scenario)
    with pytest.raises(RuntimeError, match="modified in place: /registry/configmaps/default/shared"):
        fresh_server.call(api_of(fresh_server).stop())
