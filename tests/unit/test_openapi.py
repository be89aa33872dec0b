"""OpenAPI as kubectl 1.32 reads it: the index, per-group-version v3 documents, the PATCH
operation's fieldValidation parameter (so kubectl leaves strict validation to the server),
strategic-merge support and patch metadata, and x-kubernetes-group-version-kind lookup."""

from __future__ import annotations

from typing import Any

import orjson

from bosun.api import openapi
from bosun.api.registry import RESOURCES


def _doc(path: str) -> dict[str, Any]:
    raw = openapi.openapi_v3(path)
    assert raw is not None, path
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "allOf" in schema:
        schema = schema["allOf"][0]
    if "items" in schema:
        schema = schema["items"]
    ref = schema.get("$ref")
    if ref:
        target: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return target
    return schema


def test_index_paths_resolve_with_their_hash_query() -> None:
    index = openapi.openapi_v3_index()["paths"]
    assert "api/v1" in index and "apis/apps/v1" in index
    for path, entry in index.items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{path}?hash=")
        assert openapi.openapi_v3(url) == openapi.openapi_v3(path)
        assert url.endswith(openapi.etag(path) or "")
    assert openapi.openapi_v3("apis/nope/v1") is None


def test_every_kind_has_a_component_with_its_gvk_and_a_patch_with_field_validation() -> None:
    for r in RESOURCES:
        doc = _doc(f"api/{r.version}" if not r.group else f"apis/{r.group}/{r.version}")
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        comps = [c for c in doc["components"]["schemas"].values()
                 if gvk in c.get("x-kubernetes-group-version-kind", [])]
        assert len(comps) == 1, r.kind
        assert {"apiVersion", "kind", "metadata"} <= set(comps[0]["properties"])
        verb = "patch" if "patch" in r.verbs else "post"  # create-only kinds (Binding) have no PATCH
        patches = [p[verb] for p in doc["paths"].values()
                   if verb in p and p[verb]["x-kubernetes-group-version-kind"] == gvk]
        assert patches, r.kind
        for op in patches:
            names = {(x["name"], x["in"]) for x in op["parameters"]}
            assert ("fieldValidation", "query") in names
            if verb == "patch":
                assert "application/strategic-merge-patch+json" in op["requestBody"]["content"]


def test_refs_all_resolve() -> None:
    for path in openapi.openapi_v3_index()["paths"]:
        raw = openapi.openapi_v3(path)
        assert raw is not None
        schemas = orjson.loads(raw)["components"]["schemas"]
        for ref in {part.split('"')[0] for part in raw.decode().split('"$ref":"')[1:]}:
            assert ref.startswith("#/components/schemas/")
            assert ref.removeprefix("#/components/schemas/") in schemas, (path, ref)


def test_patch_metadata_for_kubectl_apply() -> None:
    doc = _doc("apis/apps/v1")
    dep = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    spec = _resolve(doc, dep["properties"]["spec"])
    template = _resolve(doc, spec["properties"]["template"])
    pod_spec = _resolve(doc, template["properties"]["spec"])
    containers = pod_spec["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    container = _resolve(doc, containers)
    assert container["properties"]["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"
    assert container["properties"]["env"]["x-kubernetes-patch-merge-key"] == "name"
    assert "image" in container["properties"] and "name" in container["required"]
    assert spec["properties"]["replicas"]["type"] == "integer"


def test_explain_path_pods_spec_containers_is_described() -> None:
    doc = _doc("api/v1")
    pod = doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    assert pod["description"]
    spec = _resolve(doc, pod["properties"]["spec"])
    assert spec["properties"]["containers"]["description"].startswith("List of containers")


def test_scale_subresource_is_in_apps_document() -> None:
    doc = _doc("apis/apps/v1")
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]


def test_v2_is_swagger_json_with_every_kind() -> None:
    doc = orjson.loads(openapi.openapi_v2())
    assert doc["swagger"] == "2.0"
    gvks = [g for d in doc["definitions"].values() for g in d.get("x-kubernetes-group-version-kind", [])]
    for r in RESOURCES:
        assert {"group": r.group, "version": r.version, "kind": r.kind} in gvks
