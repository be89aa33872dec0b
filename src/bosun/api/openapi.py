"""OpenAPI documents (``/openapi/v2``, ``/openapi/v3``, ``/openapi/v3/<path>``) for kubectl.

kubectl 1.32 reads OpenAPI v3 for four things: ``kubectl explain``; the PATCH operation's
``fieldValidation`` query parameter (when advertised, ``kubectl apply/create`` send
``fieldValidation=Strict`` and let the server reject unknown fields instead of validating on
the client); whether PATCH accepts ``application/strategic-merge-patch+json``; and the
``x-kubernetes-patch-merge-key``/``-strategy`` of each field to compute ``kubectl apply``'s
three-way patch (components found through ``x-kubernetes-group-version-kind``). Everything is
built from the generated ``schemas/types.json`` and the registry, once, and cached as bytes.

OpenAPI v2 is served as JSON and, for client-go, as gnostic's protobuf
(``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``, encoded by
:mod:`bosun.api.openapi_proto`): kubectl validates ``kind: List`` documents on the client with
it, because the server's ``fieldValidation`` cannot see inside a List. Unlike v3, v2 puts a
field's description right beside its ``$ref`` (no ``allOf`` wrapper), as kube-apiserver does:
kubectl's v2 parser ignores ``allOf`` and would stop checking such fields.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from typing import Any

import orjson

from bosun.api.catalog import BUILTIN, Catalog
from bosun.api.discovery import KUBE_MAJOR, KUBE_MINOR, subresource_kind
from bosun.api.openapi_custom import custom_definitions, custom_names
from bosun.api.openapi_proto import encode_document
from bosun.api.registry import Resource
from bosun.api.schema import raw_types

V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
# What the protobuf document is served as: Go's mime parser (client-go) rejects the "@" spelling
# that clients ask for, so kube-apiserver answers with this one and accepts both.
V2_PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_INFO = {"title": "Kubernetes", "version": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0"}
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INTSTR = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_EXTRA_SCHEMAS = {
    _QUANTITY: {
        "type": "string",
        "description": "Quantity is a fixed-point representation of a number, written as a "
                       "string such as \"100m\", \"1Gi\" or \"2\" (numbers are accepted too).",
    },
    _INTSTR: {
        "type": "string", "format": "int-or-string",
        "description": "IntOrString holds an int32 or a string.",
    },
}
_MODEL_RE = re.compile(r"^V\d+(?:alpha\d+|beta\d+)?(.+)$")
_PATCH_TYPES = (
    "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json", "application/apply-patch+yaml",
)


def _schema_name(model: str) -> str:
    data = raw_types()
    pkg = data["packages"][model]
    if model in _EXTRA_SCHEMAS:
        return model
    short = model[4:] if model.startswith("Core") else model
    m = _MODEL_RE.match(short)
    return f"{pkg}.{m.group(1) if m else short}"


class _Builder:
    """Turns our type strings into OpenAPI schemas (v2 and v3 differ only in $ref prefix)."""

    def __init__(self, ref_prefix: str) -> None:
        self.prefix = ref_prefix
        self.wrap_refs = not ref_prefix.startswith("#/definitions/")
        self.data = raw_types()
        # Definitions of custom resources, from their CRDs' schemas (not generated types).
        self.custom: dict[str, Any] = {}
        self.gvk_of: dict[str, list[dict[str, str]]] = {}
        for gvk, model in self.data["kinds"].items():
            g, v, k = gvk.split("/")
            self.gvk_of.setdefault(model, []).append({"group": g, "kind": k, "version": v})

    def ref(self, name: str) -> dict[str, Any]:
        return {"$ref": self.prefix + name}

    def type_schema(self, t: str, used: set[str]) -> dict[str, Any]:
        if t.startswith("[]"):
            return {"type": "array", "items": self.type_schema(t[2:], used)}
        if t.startswith("{}"):
            return {"type": "object", "additionalProperties": self.type_schema(t[2:], used)}
        simple: dict[str, dict[str, Any]] = {
            "string": {"type": "string"},
            "int32": {"type": "integer", "format": "int32"},
            "int64": {"type": "integer", "format": "int64"},
            "bool": {"type": "boolean"},
            "number": {"type": "number", "format": "double"},
            "time": {"type": "string", "format": "date-time"},
            "bytes": {"type": "string", "format": "byte"},
            "any": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        }
        if t in simple:
            return dict(simple[t])
        if t == "quantity":
            used.add(_QUANTITY)
            return self.ref(_QUANTITY)
        if t == "intstr":
            used.add(_INTSTR)
            return self.ref(_INTSTR)
        used.add(t)
        return self.ref(_schema_name(t))

    def field_schema(self, entry: dict[str, Any], used: set[str]) -> dict[str, Any]:
        s = self.type_schema(entry["t"], used)
        if "$ref" in s and self.wrap_refs:
            # kube-apiserver wraps v3 refs this way so that a description can sit beside them.
            s = {"allOf": [s]}
        if entry.get("d"):
            s["description"] = entry["d"]
        if entry.get("ps"):
            s["x-kubernetes-patch-strategy"] = entry["ps"]
        if entry.get("pk"):
            s["x-kubernetes-patch-merge-key"] = entry["pk"]
        return s

    def closure(self, models: list[str]) -> dict[str, Any]:
        """Schemas for ``models`` and everything they reference."""
        out: dict[str, Any] = {}
        todo = list(models)
        done: set[str] = set()
        while todo:
            model = todo.pop()
            if model in done:
                continue
            done.add(model)
            if model in _EXTRA_SCHEMAS:
                out[model] = dict(_EXTRA_SCHEMAS[model])
                continue
            body = self.data["types"][model]
            used: set[str] = set()
            schema: dict[str, Any] = {"type": "object"}
            if body.get("doc"):
                schema["description"] = body["doc"]
            schema["properties"] = {
                f: self.field_schema(e, used) for f, e in body["fields"].items()
            }
            if body["required"]:
                schema["required"] = list(body["required"])
            if model in self.gvk_of:
                schema["x-kubernetes-group-version-kind"] = self.gvk_of[model]
            out[_schema_name(model)] = schema
            todo.extend(used - done)
        return out


def _model(group: str, version: str, kind: str) -> str | None:
    model: str | None = raw_types()["kinds"].get(f"{group}/{version}/{kind}")
    return model


def _param(name: str, where: str, description: str, v3: bool, required: bool = False,
           typ: str = "string") -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "description": description}
    if required:
        p["required"] = True
    if v3:
        p["schema"] = {"type": typ, "uniqueItems": True}
    else:
        p["type"] = typ
        p["uniqueItems"] = True
    return p


_FIELD_VALIDATION = (
    "fieldValidation instructs the server on how to handle objects in the request containing "
    "unknown or duplicate fields. Valid values are: Ignore, Warn and Strict (the default)."
)


def _write_params(v3: bool, patch: bool = False) -> list[dict[str, Any]]:
    params = [
        _param("dryRun", "query", "When present, indicates that modifications should not be "
               "persisted. Valid value: All.", v3),
        _param("fieldManager", "query", "A name associated with the actor making these changes.",
               v3),
        _param("fieldValidation", "query", _FIELD_VALIDATION, v3),
    ]
    if patch:
        params.append(_param("force", "query", "Force is going to \"force\" Apply requests.", v3,
                             typ="boolean"))
    return params


def _operation(action: str, op_id: str, gvk: dict[str, str], response: str | None,
               builder: _Builder, v3: bool, body: str | None = None,
               params: list[dict[str, Any]] | None = None,
               consumes: tuple[str, ...] = ("*/*",)) -> dict[str, Any]:
    op: dict[str, Any] = {
        "description": f"{action} {gvk['kind']}",
        "operationId": op_id,
        "tags": [gvk["group"] + "_" + gvk["version"] if gvk["group"] else "core_" + gvk["version"]],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    resp_schema = builder.ref(response) if response else {"type": "object"}
    if v3:
        op["responses"] = {"200": {"description": "OK", "content": {
            "application/json": {"schema": resp_schema},
            "application/yaml": {"schema": resp_schema},
        }}}
        if body is not None:
            body_schema = builder.ref(body)
            op["requestBody"] = {"content": {c: {"schema": body_schema} for c in consumes},
                                 "required": True}
    else:
        op["responses"] = {"200": {"description": "OK", "schema": resp_schema}}
        op["consumes"] = list(consumes)
        op["produces"] = ["application/json", "application/yaml"]
        op["schemes"] = ["https"]
    if params or (body is not None and not v3):
        plist = list(params or [])
        if body is not None and not v3:
            plist.insert(0, {"name": "body", "in": "body", "required": True,
                             "schema": builder.ref(body)})
        op["parameters"] = plist
    return op


def _object_operations(verbs: Collection[str], op_id: str, gvk: dict[str, str], ref: str | None,
                       builder: _Builder, v3: bool) -> dict[str, Any]:
    """read/replace/patch on one object's path (``op_id``: "v1NamespacedPod", "...Status"),
    for the verbs it serves: an object and each of its subresources have the same three."""
    ops: dict[str, Any] = {}
    if "get" in verbs:
        ops["get"] = _operation("get", f"read{op_id}", gvk, ref, builder, v3)
    if "update" in verbs:
        ops["put"] = _operation("put", f"replace{op_id}", gvk, ref, builder, v3, ref, _write_params(v3))
    if "patch" in verbs:
        ops["patch"] = _operation("patch", f"patch{op_id}", gvk, ref, builder, v3,
                                  f"{_META}.Patch", _write_params(v3, True), _PATCH_TYPES)
    return ops


def _paths_for(r: Resource, builder: _Builder, v3: bool) -> tuple[dict[str, Any], list[str]]:
    """Path items for one resource and its subresources, and the models they reference."""
    base = f"/api/{r.version}" if not r.group else f"/apis/{r.group}/{r.version}"
    coll = f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{base}/{r.plural}"
    item = coll + "/{name}"
    model = _model(r.group, r.version, r.kind)
    list_model = _model(r.group, r.version, r.list_kind_name)
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    ver = r.version[0].upper() + r.version[1:]
    ns = "Namespaced" if r.namespaced else ""
    name_ = r.kind
    names = [m for m in (model, list_model) if m]
    ref = _schema_name(model) if model else None
    list_ref = _schema_name(list_model) if list_model else None
    if r.custom is not None:
        ref, list_ref = custom_names(r)
        builder.custom.update(custom_definitions(r, r.custom.openapi_schema(), builder.ref, builder.wrap_refs,
                                                 _schema_name("V1ObjectMeta"), _schema_name("V1ListMeta")))
        names.extend(("V1ObjectMeta", "V1ListMeta"))
    common_params = [_param("pretty", "query", "If 'true', then the output is pretty printed.", v3)]
    if r.namespaced:
        common_params.append(_param("namespace", "path", "object name and auth scope", v3, True))
    paths: dict[str, Any] = {}
    verbs = set(r.verbs)
    c: dict[str, Any] = {"parameters": list(common_params)}
    if "list" in verbs:
        c["get"] = _operation("list", f"list{ver}{ns}{name_}", gvk, list_ref, builder, v3)
    if "create" in verbs:
        c["post"] = _operation("post", f"create{ver}{ns}{name_}", gvk, ref, builder, v3, ref,
                               _write_params(v3))
    if "deletecollection" in verbs:
        c["delete"] = _operation("deletecollection", f"deleteCollection{ver}{ns}{name_}", gvk,
                                 f"{_META}.Status", builder, v3)
    paths[coll] = c
    item_params = [_param("name", "path", f"name of the {name_}", v3, True), *common_params]
    i: dict[str, Any] = {"parameters": item_params,
                         **_object_operations(verbs, f"{ver}{ns}{name_}", gvk, ref, builder, v3)}
    if "delete" in verbs:
        i["delete"] = _operation("delete", f"delete{ver}{ns}{name_}", gvk, f"{_META}.Status",
                                 builder, v3)
    paths[item] = i
    if r.namespaced and "list" in verbs:
        paths[f"{base}/{r.plural}"] = {
            "parameters": [common_params[0]],
            "get": _operation("list", f"list{ver}{name_}ForAllNamespaces", gvk, list_ref,
                              builder, v3),
        }
    for sub in r.subresources:
        g, v, kind, sverbs = subresource_kind(r, sub)
        smodel = _model(g, v, kind)
        if smodel is not None:
            names.append(smodel)
            sref = _schema_name(smodel)
        elif (g, v, kind) == (r.group, r.version, r.kind) and ref is not None:
            sref = ref  # a custom resource's status
        else:
            continue  # log, exec, ...: not JSON objects a client would validate or patch
        sgvk = {"group": g, "kind": kind, "version": v}
        cap = sub[0].upper() + sub[1:]
        s: dict[str, Any] = {"parameters": item_params,
                             **_object_operations(sverbs, f"{ver}{ns}{name_}{cap}", sgvk, sref, builder, v3)}
        if "create" in sverbs:
            s["post"] = _operation("post", f"create{ver}{ns}{name_}{cap}", sgvk, sref, builder,
                                   v3, sref, _write_params(v3))
        paths[f"{item}/{sub}"] = s
    return paths, names


def _document(resources: list[Resource], v3: bool) -> dict[str, Any]:
    builder = _Builder("#/components/schemas/" if v3 else "#/definitions/")
    paths: dict[str, Any] = {}
    models: list[str] = ["V1Status", "V1DeleteOptions"]
    for r in resources:
        p, names = _paths_for(r, builder, v3)
        paths.update(p)
        models.extend(names)
    schemas = builder.closure(models)
    schemas.update(builder.custom)
    schemas[f"{_META}.Patch"] = {
        "type": "object",
        "description": "Patch is provided to give a concrete name and type to the Kubernetes "
                       "PATCH request body.",
    }
    if v3:
        return {"openapi": "3.0.0", "info": _INFO, "paths": paths,
                "components": {"schemas": schemas}}
    return {"swagger": "2.0", "info": _INFO, "paths": paths, "definitions": schemas}


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _v3_docs(catalog: Catalog) -> dict[str, bytes]:
    return catalog.memo("openapi v3", lambda: {
        _gv_path(g, v): orjson.dumps(_document(catalog.resources_in(g, v), True))
        for g, versions in catalog.group_versions().items() for v in versions})


def openapi_v3(group_version_path: str, catalog: Catalog = BUILTIN) -> bytes | None:
    """GET /openapi/v3/<path> (``api/v1``, ``apis/apps/v1``; a leading slash and a ``?hash=``
    query are ignored). None when the group version is not served (404)."""
    path = group_version_path.split("?", 1)[0].strip("/").removeprefix("openapi/v3/")
    return _v3_docs(catalog).get(path)


def etag(group_version_path: str, catalog: Catalog = BUILTIN) -> str | None:
    """The hash the index advertises for a path (the server may serve it as ETag and set
    ``Cache-Control: public, immutable`` when the request's ``hash`` matches)."""
    doc = openapi_v3(group_version_path, catalog)
    return hashlib.sha512(doc).hexdigest().upper() if doc is not None else None


def openapi_v3_index(catalog: Catalog = BUILTIN) -> dict[str, Any]:
    """GET /openapi/v3: one entry per served group version, with a content hash in the URL."""
    return catalog.memo("openapi v3 index", lambda: {"paths": {
        path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={hashlib.sha512(doc).hexdigest().upper()}"}
        for path, doc in _v3_docs(catalog).items()}})


def _v2_document(catalog: Catalog) -> dict[str, Any]:
    return catalog.memo("openapi v2 document", lambda: _document(list(catalog.resources()), False))


def openapi_v2(catalog: Catalog = BUILTIN) -> bytes:
    """GET /openapi/v2 as JSON (swagger 2.0) for every served resource."""
    return catalog.memo("openapi v2 json", lambda: orjson.dumps(_v2_document(catalog)))


def openapi_v2_protobuf(catalog: Catalog = BUILTIN) -> bytes:
    """GET /openapi/v2 with the protobuf Accept: the same document as ``openapi.v2.Document``."""
    return catalog.memo("openapi v2 protobuf", lambda: encode_document(_v2_document(catalog)))


def v2_etag(protobuf: bool, catalog: Catalog = BUILTIN) -> str:
    """A strong ETag for one encoding of the v2 document (changes with the catalog)."""
    def build() -> str:
        body = openapi_v2_protobuf(catalog) if protobuf else openapi_v2(catalog)
        return '"' + hashlib.sha512(body).hexdigest().upper() + '"'

    return catalog.memo(f"openapi v2 etag {protobuf}", build)


def v2_wants_protobuf(accept: str) -> bool:
    """Whether an Accept header picks the protobuf v2 document: the first listed type we serve
    wins (client-go lists only the protobuf type; browsers and curl get JSON)."""
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip()
        if media in (V2_PROTOBUF, V2_PROTOBUF_CONTENT_TYPE):
            return True
        if media in ("application/json", "application/*", "*/*"):
            return False
    return False
