"""Kubernetes REST verbs on a decoded target: ``/api/v1/...`` and ``/apis/<group>/<version>/...``.

The request was decoded once (:mod:`bosun.api.target`) before authorization; this module
reads its body, asks the storage and formats the answer. Subresources and watches are served
by :mod:`bosun.api.subresources` and :mod:`bosun.api.watch`.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bosun.api import errors, subresources
from bosun.api.cachedlist import list_meta, list_options, list_page, objects, send_list
from bosun.api.catalog import BUILTIN, Catalog
from bosun.api.catchup import CatchUp
from bosun.api.conversion.serve import Converted
from bosun.api.errors import APIError
from bosun.api.fieldvalidation import check_fields, warn_about
from bosun.api.httputil import (
    check_kind,
    dry_run,
    include_object,
    int_param,
    json_response,
    parse_object,
    partial_metadata,
    patch_error,
    read_body,
    selectors,
    wants_partial_metadata,
    wants_table,
)
from bosun.api.patch import APPLY, PatchError, apply_patch
from bosun.api.registry import Resource, must_by_plural
from bosun.api.requestinfo import USER
from bosun.api.serversideapply import applier, manager_of, parse_config
from bosun.api.storage import Storage
from bosun.api.tables import to_table
from bosun.api.target import Target, decoded, redecoded
from bosun.api.watch import serve_watch
from bosun.api.watchcache import WatchCache
from bosun.security.satokens import ServiceAccountTokens

PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)

# What a collection delete removed (or marked), and the list's resourceVersion.
Deleted = tuple[list[dict[str, Any]], str]


class RestHandler:
    def __init__(self, storage: Storage, cache: WatchCache, node_token: str = "",
                 catalog: Catalog = BUILTIN, service_accounts: ServiceAccountTokens | None = None) -> None:
        self.storage = storage
        self.cache = cache
        # Waits until this process has seen every CRD the store holds (catchup.py).
        self.catch_up = CatchUp(cache, storage)
        # What this server serves: the built-in kinds and its Established CRDs' resources.
        self.catalog = catalog
        # Signs the tokens TokenRequest hands out (None: this server issues none).
        self.service_accounts = service_accounts
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

    async def handle(self, request: web.Request) -> web.StreamResponse:
        d = decoded(request, self.catalog)
        if d.target is None and await self.catch_up():  # perhaps a CRD this process has not seen yet
            d = redecoded(request, self.catalog)
        t = d.served()
        method = request.method
        if t.res.converter is not None:
            return await Converted(self, request, t, t.res.converter).serve()
        if t.sub is not None:
            return await subresources.handle(self, request, t)
        if t.verb not in t.res.verbs:
            raise errors.method_not_allowed(
                f"the server does not allow this method on the requested resource ({t.verb} {t.res.plural})"
            )
        if t.name is None:
            if method == "GET":
                if t.verb == "watch":
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
        obj = await self.storage.get_shared(t.res, t.namespace, t.name)  # only encoded here
        return json_response(self.render(request, t.res, obj))

    async def list(self, request: web.Request, t: Target) -> web.StreamResponse:
        labels, fields = selectors(request, t.res)
        page = await list_page(self.cache, self.storage, t.res, t.namespace, list_options(request), labels, fields)
        if wants_table(request) or wants_partial_metadata(request):
            items = objects(t.res, page)
            meta = list_meta(page)
            if wants_table(request):
                table = to_table(t.res, items, include_object=include_object(request), now=datetime.now(UTC))
                table["metadata"] = meta
                return json_response(table)
            return json_response({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": meta, "items": [partial_metadata(o) for o in items],
            })
        return await send_list(request, t.res, page)

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
        check_fields(request, t.res, obj, headers)
        warn_about(t.res, obj, headers)
        if t.res.created_as is not None:
            # Creating one is a subresource write on the object the body names (a Binding
            # binds the pod of its name): the one entry of that subresource serves it.
            parent, sub = t.res.created_as
            name = str((obj.get("metadata") or {}).get("name") or "")
            on = Target(must_by_plural(t.res.group, t.res.version, parent), t.namespace, name, sub, "create")
            return await subresources.create(self, request, on, obj)
        created = await self.storage.create(t.res, t.namespace, obj, dry_run=dry_run(request),
                                            user=request.get(USER), manager=manager_of(request))
        return json_response(created, status=201, headers=headers)

    async def update(self, request: web.Request, t: Target, sub: str | None = None) -> web.Response:
        assert t.name is not None
        obj = parse_object(await read_body(request), request.content_type)
        check_kind(t.res, obj)
        headers: dict[str, str] = {}
        check_fields(request, t.res, obj, headers)
        warn_about(t.res, obj, headers)
        body_ns = (obj.get("metadata") or {}).get("namespace")
        if t.res.namespaced and body_ns and body_ns != t.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        out = await self.storage.update(t.res, t.namespace, t.name, obj, subresource=sub, dry_run=dry_run(request),
                                        manager=manager_of(request), user=request.get(USER))
        return json_response(out, headers=headers)

    async def patch(self, request: web.Request, t: Target, sub: str | None = None) -> web.Response:
        assert t.name is not None
        ctype = request.content_type
        if ctype not in PATCH_TYPES:
            raise errors.unsupported_media_type(ctype)
        body = await read_body(request)
        headers: dict[str, str] = {}
        if ctype == APPLY:
            return await self._apply(request, t, sub, body, headers)

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
                check_fields(request, t.res, part, headers)
                if "status" in part:
                    patched["status"] = part["status"]  # pruned of unknown fields
            else:
                check_fields(request, t.res, patched, headers)
                warn_about(t.res, patched, headers)
            return patched

        out = await self.storage.mutate(t.res, t.namespace, t.name, fn, subresource=sub, dry_run=dry_run(request),
                                        fn_copies=True, manager=manager_of(request), user=request.get(USER))
        return json_response(out, headers=headers)

    async def _apply(self, request: web.Request, t: Target, sub: str | None, body: bytes,
                     headers: dict[str, str]) -> web.Response:
        """Server-side apply: merge the manager's configuration, or create the object from it."""
        assert t.name is not None
        if not request.query.get("fieldManager"):
            raise errors.bad_request("PATCH, application/apply-patch+yaml, requires a fieldManager")
        force = request.query.get("force", "false") == "true"
        config = parse_config(body, t.res, t.name)

        def check(out: dict[str, Any]) -> None:
            check_fields(request, t.res, out, headers)
            warn_about(t.res, out, headers)

        fn = applier(t.res, config, request.query["fieldManager"], force, sub or "", check)
        try:
            out = await self.storage.mutate(t.res, t.namespace, t.name, fn, subresource=sub,
                                            dry_run=dry_run(request), applied=True, user=request.get(USER))
        except APIError as exc:
            if exc.code != 404 or sub is not None:
                raise
            created = fn(None)
            created.setdefault("metadata", {})["name"] = t.name
            out = await self.storage.create(t.res, t.namespace, created, dry_run=dry_run(request),
                                            user=request.get(USER), applied=True)
            return json_response(out, status=201, headers=headers)
        return json_response(out, headers=headers)

    async def delete(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        options = await self.delete_options(request)
        obj, gone = await self.storage.delete(t.res, t.namespace, t.name, options=options,
                                              dry_run=_delete_dry_run(request, options), user=request.get(USER))
        if t.res.strategy.return_deleted_object or not gone:
            return json_response(obj)
        return json_response(_success(t.res, obj))

    async def delete_options(self, request: web.Request) -> dict[str, Any]:
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
        deleted, rv = await self.delete_matching(request, t)
        return json_response({
            "kind": t.res.list_kind_name, "apiVersion": t.res.api_version,
            "metadata": {"resourceVersion": rv}, "items": deleted,
        })

    async def delete_matching(self, request: web.Request, t: Target) -> Deleted:
        """Delete every object of ``t``'s collection the request's selectors match: what was
        deleted (or marked), and the list's resourceVersion."""
        labels, fields = selectors(request, t.res)
        options = await self.delete_options(request)
        items, rv, _ = await self.storage.list(t.res, t.namespace, labels=labels, fields=fields)
        deleted = []
        for obj in items:
            m = obj["metadata"]
            try:
                out, _gone = await self.storage.delete(
                    t.res, m.get("namespace"), m["name"], options=copy.deepcopy(options),
                    dry_run=_delete_dry_run(request, options), user=request.get(USER),
                )
                deleted.append(out)
            except APIError as exc:
                if exc.code != 404:
                    raise
        return deleted, rv


def _delete_dry_run(request: web.Request, options: dict[str, Any]) -> bool:
    """Clients send dryRun in the query or in the DeleteOptions body (kubectl does the latter)."""
    in_body = options.get("dryRun") or []
    if not isinstance(in_body, list) or any(v != "All" for v in in_body):
        raise errors.bad_request(f'dryRun: Unsupported value: {in_body!r}: supported values: "All"')
    return dry_run(request) or bool(in_body)


def _success(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata") or {}
    details: dict[str, Any] = {"name": m.get("name", ""), "kind": res.plural, "uid": m.get("uid", "")}
    if res.group:
        details["group"] = res.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
