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
from bosun.api.cachedlist import list_options, list_page, objects
from bosun.api.conversion import Converter
from bosun.api.fieldvalidation import check_fields
from bosun.api.httputil import (
    check_kind,
    dry_run,
    json_response,
    parse_object,
    patch_error,
    read_body,
    selectors,
    wants_partial_metadata,
    wants_table,
)
from bosun.api.patch import APPLY, PatchError, apply_patch
from bosun.api.registry import Resource, must_by_plural
from bosun.api.requestinfo import USER
from bosun.api.serversideapply import applier, parse_config
from bosun.api.target import Target
from bosun.api.watch import serve_watch

if TYPE_CHECKING:
    from bosun.api.rest import RestHandler

Obj = dict[str, Any]
PATCH_TYPES = ("application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json")


def stored_resource(res: Resource, conv: Converter) -> Resource:
    return must_by_plural(conv.storage_group, conv.storage_version, res.plural)


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

    async def _stored_body(self, headers: dict[str, str], *, creating: bool = False) -> Obj:
        served = await self._body()
        if creating:
            errs = self.conv.validate(served)
            if errs:
                name = str((served.get("metadata") or {}).get("name") or "")
                raise errors.invalid_object(self.t.res.kind, name, errs, self.t.res.group)
        up = self.conv.to_storage(served)
        check_fields(self.request, self.stored, up, headers)
        return up

    async def serve(self) -> web.StreamResponse:
        try:
            return await self._serve()
        except errors.APIError as exc:
            raise self._restated(exc) from None

    def _restated(self, exc: errors.APIError) -> errors.APIError:
        """An error about the stored object told in the served group's words (``events.events.k8s.io
        "x" not found``), as the client named it."""
        served, stored = self.t.res, self.stored
        details = exc.details
        if served.group == stored.group or not details or details.get("kind") != served.plural:
            return exc
        details["group"] = served.group
        exc.message = exc.message.replace(f'{stored.group_plural} "', f'{served.group_plural} "', 1)
        exc.args = (exc.message,)
        return exc

    async def _serve(self) -> web.StreamResponse:
        t, method, storage = self.t, self.request.method, self.rest.storage
        if t.verb == "watch":
            return await serve_watch(self.rest, self.request, Target(self.stored, t.namespace, None, None, t.verb),
                                     convert=self.conv.from_storage, served=t.res)
        if t.sub is not None and t.sub != "status":
            raise errors.method_not_allowed(f"the server does not allow this method on {t.res.plural}/{t.sub}")
        headers: dict[str, str] = {}
        if t.name is None:
            if method == "GET":
                if _rendered(self.request):
                    return await self.rest.list(self.request, Target(self.stored, t.namespace, None, None, t.verb))
                return json_response(await self._list())
            if method == "POST" and t.res.namespaced and t.namespace is not None:
                body = await self._stored_body(headers, creating=True)
                created = await storage.create(self.stored, t.namespace, body,
                                               dry_run=dry_run(self.request), user=self.request.get(USER))
                return json_response(self.conv.from_storage(created), status=201, headers=headers)
            if method == "DELETE" and "deletecollection" in t.res.verbs:
                deleted, rv = await self.rest.delete_matching(
                    self.request, Target(self.stored, t.namespace, None, None, t.verb))
                return json_response({"kind": t.res.list_kind_name, "apiVersion": t.res.api_version,
                                      "metadata": {"resourceVersion": rv},
                                      "items": [self.conv.from_storage(o) for o in deleted]})
            raise errors.method_not_allowed(f"the server does not allow this method on {t.res.plural}: {method}")
        if method == "GET":
            return json_response(self._out(await storage.get(self.stored, t.namespace, t.name)))
        if method == "PUT":
            out = await storage.update(self.stored, t.namespace, t.name, await self._stored_body(headers),
                                       subresource=t.sub, dry_run=dry_run(self.request),
                                       user=self.request.get(USER))
            return json_response(self.conv.from_storage(out), headers=headers)
        if method == "PATCH":
            if self.request.content_type == APPLY:
                out, status = await self._apply(headers)
                return json_response(self.conv.from_storage(out), status=status, headers=headers)
            return json_response(self.conv.from_storage(await self._patch()), headers=headers)
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

    async def _list(self) -> Obj:
        """The stored objects' page (selectors, limit and continue as on the stored kind),
        each converted."""
        labels, fields = selectors(self.request, self.stored)
        page = await list_page(self.rest.cache, self.rest.storage, self.stored, self.t.namespace,
                               list_options(self.request), labels, fields)
        meta: Obj = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            meta["continue"] = page.continue_token
        return {"kind": self.t.res.list_kind_name, "apiVersion": self.t.res.api_version, "metadata": meta,
                "items": [self.conv.from_storage(o) for o in objects(self.stored, page)]}

    async def _apply(self, headers: dict[str, str]) -> tuple[Obj, int]:
        """Server-side apply of a served-version configuration: converted, it is applied to
        the stored object as that kind's (its managed fields name the stored version's
        fields), or creates it."""
        t, request = self.t, self.request
        assert t.name is not None
        if not request.query.get("fieldManager"):
            raise errors.bad_request("PATCH, application/apply-patch+yaml, requires a fieldManager")
        served = parse_config(await read_body(request), t.res, t.name)
        config = self.conv.to_storage(served)
        fn = applier(self.stored, config, request.query["fieldManager"], request.query.get("force") == "true",
                     t.sub or "", lambda out: check_fields(request, self.stored, out, headers))
        storage, user = self.rest.storage, request.get(USER)
        try:
            out = await storage.mutate(self.stored, t.namespace, t.name, fn, subresource=t.sub,
                                       dry_run=dry_run(request), applied=True, user=user)
            return out, 200
        except errors.APIError as exc:
            if exc.code != 404 or t.sub is not None:
                raise
        errs = self.conv.validate(served)
        if errs:
            raise errors.invalid_object(t.res.kind, t.name, errs, t.res.group)
        created = fn(None)
        created.setdefault("metadata", {})["name"] = t.name
        out = await storage.create(self.stored, t.namespace, created, dry_run=dry_run(request), user=user,
                                   applied=True)
        return out, 201

    async def _patch(self) -> Obj:
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
                                              user=self.request.get(USER))
