"""Requests for a served version that is stored in another one (a row with a converter).

Every verb runs the stored version's own path (strategy, validation, admission, store) on
the converted object, and the answer is converted back (watch events included): a v1 client sees v1, validation
and every other client see the stored version.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bosun.api import errors
from bosun.api.conversion import Converter
from bosun.api.fieldvalidation import add_warnings, check_fields
from bosun.api.httputil import (
    check_kind,
    dry_run,
    json_response,
    parse_object,
    patch_error,
    read_body,
    wants_partial_metadata,
    wants_table,
)
from bosun.api.patch import PatchError, apply_patch
from bosun.api.registry import Resource, must_by_plural
from bosun.api.requestinfo import USER
from bosun.api.target import Target
from bosun.api.watch import serve_watch

if TYPE_CHECKING:
    from bosun.api.rest import RestHandler

Obj = dict[str, Any]
PATCH_TYPES = ("application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json")


def stored_resource(res: Resource, conv: Converter) -> Resource:
    return must_by_plural(res.group, conv.storage_version, res.plural)


def _rendered(request: web.Request) -> bool:
    """A Table or metadata-only answer: made from the stored object (its columns)."""
    return wants_table(request) or wants_partial_metadata(request)


class Converted:
    """One request against a converted row."""

    def __init__(self, rest: RestHandler, request: web.Request, t: Target, conv: Converter) -> None:
        self.rest, self.request, self.t, self.conv = rest, request, t, conv
        self.stored = stored_resource(t.res, conv)

    def _out(self, obj: Obj) -> Obj:
        if _rendered(self.request):
            return self.rest.render(self.request, self.stored, obj)
        return self.conv.from_storage(obj)

    async def _body(self) -> Obj:
        obj = parse_object(await read_body(self.request), self.request.content_type)
        check_kind(self.t.res, obj)
        body_ns = (obj.get("metadata") or {}).get("namespace")
        if self.t.res.namespaced and body_ns and body_ns != self.t.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request")
        return obj

    async def _stored_body(self, headers: dict[str, str]) -> Obj:
        up = self.conv.to_storage(await self._body())
        check_fields(self.request, self.stored, up, headers)
        return up

    async def serve(self) -> web.StreamResponse:
        t, method, storage = self.t, self.request.method, self.rest.storage
        if t.verb == "watch":
            return await serve_watch(self.rest, self.request, Target(self.stored, t.namespace, None, None, t.verb),
                                     convert=self.conv.from_storage, served=t.res)
        if t.sub is not None and t.sub != "status":
            raise errors.method_not_allowed(f"the server does not allow this method on {t.res.plural}/{t.sub}")
        headers: dict[str, str] = {}
        told: list[str] = []  # what admission tells the client (Warning headers)
        if t.name is None:
            if method == "GET":
                items, rv, _ = await storage.list(self.stored, t.namespace)
                if _rendered(self.request):
                    return await self.rest.list(self.request, Target(self.stored, t.namespace, None, None, t.verb))
                return json_response({"kind": t.res.list_kind_name, "apiVersion": t.res.api_version,
                                      "metadata": {"resourceVersion": rv},
                                      "items": [self.conv.from_storage(o) for o in items]})
            if method == "POST" and t.res.namespaced and t.namespace is not None:
                created = await storage.create(self.stored, t.namespace, await self._stored_body(headers),
                                               dry_run=dry_run(self.request), user=self.request.get(USER),
                                               warnings=told)
                add_warnings(headers, told)
                return json_response(self.conv.from_storage(created), status=201, headers=headers)
            raise errors.method_not_allowed(f"the server does not allow this method on {t.res.plural}: {method}")
        if method == "GET":
            return json_response(self._out(await storage.get(self.stored, t.namespace, t.name)))
        if method == "PUT":
            out = await storage.update(self.stored, t.namespace, t.name, await self._stored_body(headers),
                                       subresource=t.sub, dry_run=dry_run(self.request), user=self.request.get(USER),
                                       warnings=told)
            add_warnings(headers, told)
            return json_response(self.conv.from_storage(out), headers=headers)
        if method == "PATCH":
            patched = await self._patch(told)
            add_warnings(headers, told)
            return json_response(self.conv.from_storage(patched), headers=headers)
        if method == "DELETE" and t.sub is None:
            options = await self.rest.delete_options(self.request)
            obj, gone = await storage.delete(self.stored, t.namespace, t.name, options=options,
                                             dry_run=dry_run(self.request), user=self.request.get(USER))
            if gone:
                return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                      "details": {"name": t.name, "group": t.res.group, "kind": t.res.plural,
                                                  "uid": obj["metadata"].get("uid", "")}})
            return json_response(self.conv.from_storage(obj))
        raise errors.method_not_allowed(f"the server does not allow this method on {t.res.plural}: {method}")

    async def _patch(self, told: list[str]) -> Obj:
        t, ctype = self.t, self.request.content_type
        if ctype not in PATCH_TYPES:
            raise errors.unsupported_media_type(ctype)
        body = await read_body(self.request)

        def fn(current: Obj) -> Obj:
            served = self.conv.from_storage(copy.deepcopy(current))
            try:
                patched = apply_patch(served, body, ctype, t.res)
            except PatchError as exc:
                raise patch_error(exc) from exc
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            check_kind(t.res, patched)
            return self.conv.to_storage(patched)

        assert t.name is not None
        return await self.rest.storage.mutate(self.stored, t.namespace, t.name, fn, subresource=t.sub,
                                              dry_run=dry_run(self.request), fn_copies=True,
                                              user=self.request.get(USER), warnings=told)
