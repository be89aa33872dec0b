"""Kubernetes REST routing: ``/api/v1/...`` and ``/apis/<group>/<version>/...``.

Paths are parsed by hand rather than with one aiohttp route per shape because Kubernetes'
URL space is ambiguous to a router (``/api/v1/namespaces/x/pods`` is a pod list while
``/api/v1/namespaces/x/status`` is a namespace subresource).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bosun.api import errors, schema
from bosun.api.errors import APIError
from bosun.api.httputil import (
    check_kind,
    dry_run,
    int_param,
    json_response,
    parse_object,
    partial_metadata,
    read_body,
    wants_partial_metadata,
    wants_table,
)
from bosun.api.patch import PatchError, apply_patch
from bosun.api.registry import Resource, by_plural
from bosun.api.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    check_field_selector,
    parse_field_selector,
    parse_label_selector,
)
from bosun.api.storage import Storage
from bosun.api.tables import to_table
from bosun.api.watchcache import WatchCache

NAMESPACE_SUBRESOURCES = ("status", "finalize")
PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


@dataclass(slots=True)
class Target:
    res: Resource
    namespace: str | None
    name: str | None
    sub: str | None


def parse_target(group: str, version: str, rest: list[str]) -> Target:
    """Resolve the resource, namespace, name and subresource named by a path."""
    ns: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in NAMESPACE_SUBRESOURCES:
        ns = rest[1]
        rest = rest[2:]
    if not rest or len(rest) > 3:
        raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
    res = by_plural(group, version, rest[0])
    if res is None:
        raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if ns is not None and not res.namespaced:
        raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
    if res.namespaced and ns is None and name is not None:
        raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
    if sub is not None and sub not in res.subresources:
        raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
    return Target(res, ns, name, sub)


def selectors(request: web.Request, res: Resource) -> tuple[LabelSelector | None, FieldSelector | None]:
    ls = request.query.get("labelSelector") or None
    fs = request.query.get("fieldSelector") or None
    try:
        labels = parse_label_selector(ls) if ls else None
        fields = parse_field_selector(fs) if fs else None
        if fields is not None:
            check_field_selector(res, fields)
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from exc
    return labels, fields


def _check_schema(request: web.Request, res: Resource, obj: dict[str, Any], headers: dict[str, str]) -> None:
    """Wrong JSON types are a 400 like Kubernetes' decoder gives; unknown fields are refused
    (fieldValidation=Strict, what kubectl sends), warned about (Warn, the default) or dropped."""
    mode = request.query.get("fieldValidation", "Warn")
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Strict", "Warn"'
        )
    unknown, problems = schema.check(res, obj)
    if problems:
        raise errors.bad_request(schema.decode_error_message(res, problems[0]))
    if not unknown:
        return
    if mode == "Strict":
        raise errors.bad_request(schema.strict_error_message(res, unknown))
    dropped = schema.prune_unknown(res, obj)
    if mode == "Warn":
        headers["Warning"] = ", ".join(
            '299 - "' + schema.unknown_field_warning(p).replace('"', '\\"') + '"' for p in dropped
        )


class RestHandler:
    def __init__(self, storage: Storage, cache: WatchCache, node_token: str = "") -> None:
        self.storage = storage
        self.cache = cache
        # The credential the API server presents to node agents (logs), as kube-apiserver's
        # kubelet client certificate.
        self.node_token = node_token
        self._node_session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._node_session is not None:
            await self._node_session.close()
            self._node_session = None

    async def proxy_stream(self, request: web.Request, url: str, params: dict[str, str]) -> web.StreamResponse:
        """Stream a node agent's answer back to the client (logs, `-f` included)."""
        if self._node_session is None:
            # Agents serve self-signed certificates (kubelet's default); the bearer token
            # authenticates us to them.
            self._node_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=False), timeout=aiohttp.ClientTimeout(sock_connect=5))
        headers = {"Authorization": f"Bearer {self.node_token}"} if self.node_token else {}
        try:
            async with self._node_session.get(url, params=params, headers=headers) as upstream:
                if upstream.status != 200:
                    text = (await upstream.text())[:500].strip()
                    code = upstream.status if upstream.status in (400, 404) else 502
                    raise errors.APIError(code, "BadRequest" if code == 400 else
                                          "NotFound" if code == 404 else "BadGateway",
                                          text or f"the node agent answered {upstream.status}")
                resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.APIError(502, "BadGateway", f"cannot reach the node agent at {url}: {exc}") from exc

    async def handle(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.StreamResponse:
        t = parse_target(group, version, rest)
        method = request.method
        verb = _verb(method, t, request)
        if verb is not None and verb not in t.res.verbs:
            raise errors.method_not_allowed(
                f"the server does not allow this method on the requested resource ({verb} {t.res.plural})"
            )
        if t.sub is not None:
            from bosun.api import subresources

            return await subresources.handle(self, request, t)
        if t.name is None:
            if method == "GET":
                if request.query.get("watch", "").lower() in ("1", "true"):
                    from bosun.api.watch import serve_watch

                    return await serve_watch(self, request, t)
                return await self.list(request, t)
            if method == "POST":
                return await self.create(request, t)
            if method == "DELETE":
                return await self.delete_collection(request, t)
        else:
            if method == "GET":
                return await self.get(request, t)
            if method == "PUT":
                return await self.update(request, t)
            if method == "PATCH":
                return await self.patch(request, t)
            if method == "DELETE":
                return await self.delete(request, t)
        raise errors.method_not_allowed(f"the server does not allow this method on the requested resource: {method}")

    # ---- reads -------------------------------------------------------------------------

    def render(self, request: web.Request, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        if wants_table(request):
            table = to_table(res, [obj], include_object=include_object(request),
                             now=datetime.now(UTC))
            table.setdefault("metadata", {})["resourceVersion"] = obj["metadata"].get("resourceVersion", "")
            return table
        if wants_partial_metadata(request):
            return partial_metadata(obj)
        return obj

    async def get(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        obj = await self.storage.get(t.res, t.namespace, t.name)
        return json_response(self.render(request, t.res, obj))

    async def list(self, request: web.Request, t: Target) -> web.Response:
        labels, fields = selectors(request, t.res)
        limit = int_param(request, "limit")
        if limit < 0:
            raise errors.bad_request("limit: must be >= 0")
        items, rv, cont = await self.storage.list(
            t.res, t.namespace, labels=labels, fields=fields, limit=limit,
            continue_token=request.query.get("continue") or None,
        )
        list_meta: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            list_meta["continue"] = cont
        if wants_table(request):
            table = to_table(t.res, items, include_object=include_object(request),
                             now=datetime.now(UTC))
            table["metadata"] = list_meta
            return json_response(table)
        if wants_partial_metadata(request):
            return json_response({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": list_meta, "items": [partial_metadata(o) for o in items],
            })
        return json_response({
            "kind": t.res.list_kind_name, "apiVersion": t.res.api_version,
            "metadata": list_meta, "items": items,
        })

    # ---- writes ------------------------------------------------------------------------

    async def create(self, request: web.Request, t: Target) -> web.Response:
        if t.res.namespaced and t.namespace is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        obj = parse_object(await read_body(request), request.content_type)
        check_kind(t.res, obj)
        body_ns = (obj.get("metadata") or {}).get("namespace")
        if t.res.namespaced and body_ns and body_ns != t.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        headers: dict[str, str] = {}
        _check_schema(request, t.res, obj, headers)
        if t.res.kind == "Binding":
            from bosun.api.subresources import bind

            pods = by_plural("", "v1", "pods")
            assert pods is not None
            name = str((obj.get("metadata") or {}).get("name") or "")
            return await bind(self, pods, t.namespace, name, obj, dry_run(request))
        created = await self.storage.create(t.res, t.namespace, obj, dry_run=dry_run(request))
        return json_response(created, status=201, headers=headers)

    async def update(self, request: web.Request, t: Target, sub: str | None = None) -> web.Response:
        assert t.name is not None
        obj = parse_object(await read_body(request), request.content_type)
        check_kind(t.res, obj)
        headers: dict[str, str] = {}
        _check_schema(request, t.res, obj, headers)
        body_ns = (obj.get("metadata") or {}).get("namespace")
        if t.res.namespaced and body_ns and body_ns != t.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        out = await self.storage.update(t.res, t.namespace, t.name, obj, subresource=sub, dry_run=dry_run(request))
        return json_response(out, headers=headers)

    async def patch(self, request: web.Request, t: Target, sub: str | None = None) -> web.Response:
        assert t.name is not None
        ctype = request.content_type
        if ctype not in PATCH_TYPES:
            raise errors.unsupported_media_type(ctype)
        if ctype == "application/apply-patch+yaml":
            raise errors.APIError(
                415, "UnsupportedMediaType",
                "server-side apply is not supported by this server yet: use `kubectl apply` without --server-side",
            )
        body = await read_body(request)
        headers: dict[str, str] = {}

        def fn(current: dict[str, Any]) -> dict[str, Any]:
            try:
                patched = apply_patch(current, body, ctype, t.res)
            except PatchError as exc:
                raise patch_error(exc) from exc
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            check_kind(t.res, patched)
            if sub == "status":
                # Only status is taken from a status patch: check just that part.
                part = {"apiVersion": patched["apiVersion"], "kind": patched["kind"]}
                if "status" in patched:
                    part["status"] = patched["status"]
                _check_schema(request, t.res, part, headers)
                if "status" in part:
                    patched["status"] = part["status"]  # pruned of unknown fields
            else:
                _check_schema(request, t.res, patched, headers)
            return patched

        out = await self.storage.mutate(t.res, t.namespace, t.name, fn, subresource=sub, dry_run=dry_run(request),
                                        fn_copies=True)
        return json_response(out, headers=headers)

    async def delete(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        options = await self._delete_options(request)
        obj, gone = await self.storage.delete(t.res, t.namespace, t.name, options=options,
                                              dry_run=_delete_dry_run(request, options))
        if t.res.strategy.return_deleted_object or not gone:
            return json_response(obj)
        return json_response(_success(t.res, obj))

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        body = await read_body(request)
        if body.strip():
            options = parse_object(body, request.content_type)
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        if "gracePeriodSeconds" in request.query:
            options["gracePeriodSeconds"] = int_param(request, "gracePeriodSeconds")
        if "orphanDependents" in request.query:
            options["orphanDependents"] = request.query["orphanDependents"].lower() == "true"
        policy = options.get("propagationPolicy")
        if policy is not None and policy not in ("Background", "Foreground", "Orphan"):
            raise errors.bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                '"Background", "Foreground", "Orphan"'
            )
        g = options.get("gracePeriodSeconds")
        if g is not None and (not isinstance(g, int) or g < 0):
            raise errors.bad_request(f"gracePeriodSeconds: Invalid value: {g}: must be >= 0")
        return options

    async def delete_collection(self, request: web.Request, t: Target) -> web.Response:
        labels, fields = selectors(request, t.res)
        options = await self._delete_options(request)
        items, rv, _ = await self.storage.list(t.res, t.namespace, labels=labels, fields=fields)
        deleted = []
        for obj in items:
            m = obj["metadata"]
            try:
                out, _gone = await self.storage.delete(
                    t.res, m.get("namespace"), m["name"], options=copy.deepcopy(options),
                    dry_run=_delete_dry_run(request, options),
                )
                deleted.append(out)
            except APIError as exc:
                if exc.code != 404:
                    raise
        return json_response({
            "kind": t.res.list_kind_name, "apiVersion": t.res.api_version,
            "metadata": {"resourceVersion": rv}, "items": deleted,
        })


def _verb(method: str, t: Target, request: web.Request) -> str | None:
    """The Kubernetes verb of a request on the main resource (None for subresources)."""
    if t.sub is not None:
        return None
    if t.name is None:
        if method == "GET":
            return "watch" if request.query.get("watch", "").lower() in ("1", "true") else "list"
        return {"POST": "create", "DELETE": "deletecollection"}.get(method)
    return {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)


def _delete_dry_run(request: web.Request, options: dict[str, Any]) -> bool:
    """Clients send dryRun in the query or in the DeleteOptions body (kubectl does the latter)."""
    in_body = options.get("dryRun") or []
    if not isinstance(in_body, list) or any(v != "All" for v in in_body):
        raise errors.bad_request(f'dryRun: Unsupported value: {in_body!r}: supported values: "All"')
    return dry_run(request) or bool(in_body)


def patch_error(exc: PatchError) -> APIError:
    code = int(getattr(exc, "code", 422) or 422)
    reason = {400: "BadRequest", 415: "UnsupportedMediaType"}.get(code, "Invalid")
    return APIError(code, reason, str(getattr(exc, "message", "") or exc))


def include_object(request: web.Request) -> str:
    value = request.query.get("includeObject", "Metadata")
    if value not in ("None", "Metadata", "Object"):
        raise errors.bad_request(
            f'includeObject: Unsupported value: "{value}": supported values: "Metadata", "None", "Object"'
        )
    return value


def _success(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata") or {}
    details: dict[str, Any] = {"name": m.get("name", ""), "kind": res.plural, "uid": m.get("uid", "")}
    if res.group:
        details["group"] = res.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
