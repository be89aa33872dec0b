"""A request is decoded once into the target authorization and serving both read."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from tests.unit.helpers import must_by_kind

from bosun.api.catalog import Catalog
from bosun.api.errors import APIError
from bosun.api.target import DECODED, decode, decoded

PODS = must_by_kind("v1", "Pod")
NAMESPACES = must_by_kind("v1", "Namespace")
DEPLOYMENTS = must_by_kind("apps/v1", "Deployment")
NODES = must_by_kind("v1", "Node")
BUILTIN = Catalog()


@pytest.mark.parametrize("method, path, query, want", [
    ("GET", "/api/v1/namespaces/a/pods", {}, ("list", "", "v1", "pods", "a", "", "")),
    ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "", "v1", "pods", "", "", "")),
    ("GET", "/api/v1/namespaces/a/pods/p", {}, ("get", "", "v1", "pods", "a", "p", "")),
    ("POST", "/api/v1/namespaces/a/pods/p/binding", {}, ("create", "", "v1", "pods", "a", "p", "binding")),
    ("GET", "/api/v1/namespaces/a/pods/p/exec", {}, ("create", "", "v1", "pods", "a", "p", "exec")),
    ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", {},
     ("patch", "apps", "v1", "deployments", "a", "d", "scale")),
    ("DELETE", "/apis/apps/v1/namespaces/a/deployments", {},
     ("deletecollection", "apps", "v1", "deployments", "a", "", "")),
    ("PUT", "/api/v1/namespaces/a/finalize", {}, ("update", "", "v1", "namespaces", "", "a", "finalize")),
    ("GET", "/api/v1/namespaces/a", {}, ("get", "", "v1", "namespaces", "", "a", "")),
])
def test_decoding(method: str, path: str, query: dict[str, str], want: tuple[str, ...]) -> None:
    d = decode(method, path, query, BUILTIN)
    assert d.resource_request
    assert (d.verb, d.group, d.version, d.resource, d.namespace, d.name, d.subresource) == want
    t = d.served()
    assert (t.res.plural, t.namespace or "", t.name or "", t.sub or "", t.verb) == (
        want[3], want[4], want[5], want[6], want[0])


@pytest.mark.parametrize("path", [
    "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods",  # a group this table does not serve
    "/api/v1/namespaces/a/nodes/n",  # cluster-scoped under a namespace
    "/api/v1/pods/p",  # namespaced without one
    "/api/v1/namespaces/a/pods/p/shell",  # no such subresource
    "/api/v1/namespaces/a/pods/p/log/extra",  # too long
])
def test_unserved_paths_are_split_for_authorization_and_404_when_served(path: str) -> None:
    d = decode("GET", path, {}, BUILTIN)
    assert d.resource_request and d.target is None and d.resource
    with pytest.raises(APIError) as err:
        d.served()
    assert (err.value.code, err.value.message) == (404, "the server could not find the requested resource")


def test_non_resource_paths_keep_the_method_as_verb() -> None:
    d = decode("GET", "/openapi/v2", {}, BUILTIN)
    assert (d.resource_request, d.verb, d.target) == (False, "get", None)


def test_a_request_is_decoded_once() -> None:
    req = make_mocked_request("GET", "/api/v1/namespaces/a/pods?fieldSelector=spec.nodeName%3Dn1")
    first = decoded(req, BUILTIN)
    assert req[DECODED] is first and decoded(req, BUILTIN) is first
    assert first.field_selector == "spec.nodeName=n1"
