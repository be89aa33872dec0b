"""The request pipeline's front stages through the real server: one decoding of the path for
authorization and serving (404 for what is not served, 405 for a verb a resource does not
take), and one entry for binding whichever URL asks for it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tests.conftest import RunningServer

NOT_FOUND = "the server could not find the requested resource"


class Raw:
    """Plain HTTPS requests with the admin token: the answers a client sees, Status and all."""

    def __init__(self, server: RunningServer, session: aiohttp.ClientSession) -> None:
        self.base = server.url
        self.session = session
        self.ssl = ssl.create_default_context(cafile=server.ca_path)
        self.headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}

    async def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, json=body, headers=self.headers,
                                        ssl=self.ssl) as r:
            return r.status, await r.json(content_type=None)


@pytest.fixture
async def raw(api_server: RunningServer, namespace: str) -> AsyncIterator[Raw]:
    async with aiohttp.ClientSession() as session:
        r = Raw(api_server, session)
        status, _ = await r("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        assert status == 201
        try:
            yield r
        finally:
            await r("DELETE", f"/api/v1/namespaces/{namespace}")


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def binding(name: str, node: str | None, kind: str = "Node") -> dict[str, Any]:
    target = {"kind": kind, **({"name": node} if node else {})}
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": target}


async def test_binding_is_the_same_through_both_urls(raw: Raw, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    for name in ("p1", "p2"):
        assert (await raw("POST", f"{base}/pods", pod(name)))[0] == 201
    status, body = await raw("POST", f"{base}/bindings", binding("p1", "n1"))
    assert (status, body["status"]) == (201, "Success")
    status, body = await raw("POST", f"{base}/pods/p2/binding", binding("p2", "n2"))
    assert (status, body["status"]) == (201, "Success")
    for path, name in ((f"{base}/bindings", "p1"), (f"{base}/pods/p1/binding", "p1")):
        status, body = await raw("POST", path, binding(name, "n3"))
        assert status == 409 and body["message"].endswith('pod p1 is already assigned to node "n1"')
    _, p1 = await raw("GET", f"{base}/pods/p1")
    assert p1["spec"]["nodeName"] == "n1"
    assert [c["type"] for c in p1["status"]["conditions"]] == ["PodScheduled"]
    for path in (f"{base}/bindings", f"{base}/pods/p2/binding"):
        status, body = await raw("POST", path, binding("p2", None))
        assert (status, body["reason"]) == (422, "Invalid")
        assert "target.name: Required value" in body["message"]
        status, body = await raw("POST", path, binding("p2", "n1", kind="Pod"))
        assert status == 422 and 'target.kind: Unsupported value: "Pod": supported values: "Node"' in body["message"]
    status, body = await raw("POST", f"{base}/bindings", binding("ghost", "n1"))
    assert (status, body["reason"]) == (404, "NotFound")


@pytest.mark.parametrize("method, path, verb", [
    ("DELETE", "/api/v1/namespaces", "deletecollection namespaces"),
    ("GET", "/api/v1/namespaces/{ns}/bindings", "list bindings"),
    ("GET", "/api/v1/namespaces/{ns}/bindings/b", "get bindings"),
])
async def test_a_verb_the_resource_does_not_take_is_405(raw: Raw, namespace: str, method: str, path: str,
                                                       verb: str) -> None:
    status, body = await raw(method, path.format(ns=namespace))
    assert (status, body["reason"]) == (405, "MethodNotAllowed")
    assert body["message"] == f"the server does not allow this method on the requested resource ({verb})"


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/{ns}/nodes/n1",  # cluster-scoped under a namespace
    "/api/v1/pods/p1",  # namespaced without one
    "/api/v1/namespaces/{ns}/pods/p1/shell",  # no such subresource
    "/api/v1/namespaces/{ns}/pods/p1/log/more",  # too deep
    "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicys",  # misspelt
])
async def test_a_path_naming_nothing_served_is_404(raw: Raw, namespace: str, path: str) -> None:
    status, body = await raw("GET", path.format(ns=namespace))
    assert (status, body["reason"], body["message"]) == (404, "NotFound", NOT_FOUND)
