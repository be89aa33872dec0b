"""Lists served from the watch cache, with Kubernetes' resourceVersion semantics.

=============================  ================================================================
``resourceVersion`` (match)    what is read
=============================  ================================================================
unset                          consistent: the store's current revision is asked for (one cheap
                               call) and the list waits until the cache has seen it, as
                               kube-apiserver's ConsistentListFromCache; if the cache does not
                               catch up in time the store serves the list
``0``                          whatever the cache holds now
``N`` (unset, NotOlderThan)    the cache once it has seen N (504 "Too large resource version"
                               after a wait, as upstream)
``N`` (Exact)                  the objects as they were at N, rebuilt from the event ring;
                               410 Expired once N is older than the ring
``continue``                   the next page at the first page's revision (from the ring, as
                               Exact); 410 with upstream's message and an inconsistent token
                               once that revision left the ring
=============================  ================================================================

Selectors and ``limit`` are applied here, on the smallest indexed set
(:mod:`bosun.api.cachestate`), and a page is returned as items whose JSON the cache keeps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from bosun.api import continuetoken, errors
from bosun.api.cachestate import Item, Past, SnapshotGone, range_from, snapshot
from bosun.api.httputil import int_param
from bosun.api.registry import Resource
from bosun.api.selectors import FieldSelector, LabelSelector
from bosun.api.storage import Storage
from bosun.api.storecall import call_store
from bosun.api.watchcache import WatchCache

# How long a read waits for the cache to reach a revision (kube-apiserver waits 3 s too).
WAIT_SECONDS = 3.0
EXACT = "Exact"
NOT_OLDER_THAN = "NotOlderThan"
EXPIRED = "The resourceVersion for the provided list is too old."
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)
CHUNK = 1 << 20  # bytes of a large list written at a time
INCONSISTENT = -1  # the revision of a continue token that reads whatever is current


@dataclass(frozen=True, slots=True)
class ListOptions:
    resource_version: str = ""
    match: str = ""
    limit: int = 0
    continue_token: str = ""


@dataclass(slots=True)
class Page:
    items: list[Item]
    resource_version: int
    continue_token: str = ""
    # Items after this page, set only when no selector filters the list (as upstream: with a
    # selector the count would need the whole scan the page spared).
    remaining_item_count: int | None = None


def list_options(request: web.Request) -> ListOptions:
    """The list's options from the query, refused as upstream's ValidateListOptions does."""
    q = request.query
    opts = ListOptions(q.get("resourceVersion", ""), q.get("resourceVersionMatch", ""),
                       int_param(request, "limit"), q.get("continue", ""))
    if opts.limit < 0:
        raise errors.bad_request("limit: must be >= 0")
    errs: list[errors.FieldError] = []
    field = "resourceVersionMatch"
    if opts.match:
        if not opts.resource_version:
            errs.append(errors.forbidden(field, "resourceVersionMatch is forbidden unless resourceVersion is provided"))
        if opts.continue_token:
            errs.append(errors.forbidden(field, "resourceVersionMatch is forbidden when continue is provided"))
        if opts.match not in (EXACT, NOT_OLDER_THAN):
            errs.append(errors.not_supported(field, opts.match, [EXACT, NOT_OLDER_THAN, ""]))
        if opts.match == EXACT and opts.resource_version == "0":
            errs.append(errors.forbidden(field, 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    if errs:
        err = errors.invalid_object("ListOptions", "", errs, "meta.k8s.io")
        err.message = err.message.replace("ListOptions", "ListOptions.meta.k8s.io", 1)
        raise err
    if opts.continue_token and opts.resource_version not in ("", "0"):
        raise errors.bad_request("specifying resource version is not allowed when using continue")
    return opts


def _revision(text: str) -> int:
    try:
        rev = int(text)
    except ValueError:
        rev = -1
    if rev < 0:
        raise errors.bad_request(f"invalid resource version: {text!r}")
    return rev


async def _caught_up(cache: WatchCache, revision: int) -> bool:
    """Whether the cache has seen ``revision`` within the wait."""
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            await cache.wait_for(revision)
    except TimeoutError:
        return cache.revision >= revision
    return True


async def _not_older_than(cache: WatchCache, revision: int) -> None:
    if not await _caught_up(cache, revision):
        raise errors.APIError(504, "Timeout", f"Too large resource version: {revision}, current: {cache.revision}",
                              details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                   "message": "Too large resource version"}],
                                       "retryAfterSeconds": 1})


async def list_page(
    cache: WatchCache, storage: Storage, res: Resource, ns: str | None, opts: ListOptions,
    labels: LabelSelector | None = None, fields: FieldSelector | None = None,
) -> Page:
    """One page of a list (see the module docstring for what is read)."""
    prefix = res.key_prefix(ns)
    start = prefix
    at = 0  # the revision to read at; 0: what the cache holds now
    if opts.continue_token:
        start, token_rv = continuetoken.decode(opts.continue_token, prefix)
        at = int(token_rv)
        if at == INCONSISTENT:
            at = 0
        elif at < cache.oldest:
            inconsistent = continuetoken.encode(start, str(INCONSISTENT), prefix)
            raise errors.APIError(410, "Expired", CONTINUE_EXPIRED, list_meta={"continue": inconsistent})
        elif at > cache.revision:  # a page from a server further ahead (etcd, several servers)
            await _not_older_than(cache, at)
    elif not opts.resource_version:
        current = await call_store(storage.store.current_revision())
        if not await _caught_up(cache, current):
            return await _from_store(storage, res, ns, opts, labels, fields)
    elif opts.resource_version != "0":
        wanted = _revision(opts.resource_version)
        if wanted > cache.revision:
            await _not_older_than(cache, wanted)
        if opts.match == EXACT:
            if wanted < cache.oldest:
                raise errors.gone(EXPIRED)
            at = wanted
    return _read(cache, res, ns, prefix, start, at, opts.limit, labels, fields)


def _read(cache: WatchCache, res: Resource, ns: str | None, prefix: str, start: str, at: int, limit: int,
          labels: LabelSelector | None, fields: FieldSelector | None) -> Page:
    """Synchronous from here on: the page is one consistent state of the cache."""
    bucket = cache.resource(res.group_plural).candidates(ns if res.namespaced else None, fields)
    if at and at < cache.revision:
        try:
            items: list[Item] = snapshot(bucket, cache.changed_since(res.group_plural, at), prefix, start)
        except SnapshotGone as exc:
            raise errors.gone(EXPIRED) from exc
    else:
        at = cache.revision
        current = bucket.items
        items = [current[k] for k in range_from(bucket.sorted_keys(), prefix, start)]
    out: list[Item] = []
    next_key = ""
    remaining: int | None = None
    for i, item in enumerate(items):
        if limit and len(out) == limit:
            next_key = item.key
            if labels is None and fields is None:
                remaining = len(items) - i
            break
        if labels is not None or fields is not None:
            obj = item.obj
            if labels is not None and not labels.matches(obj.get("metadata", {}).get("labels") or {}):
                continue
            if fields is not None and not fields.matches(obj):
                continue
        out.append(item)
    cont = continuetoken.encode(next_key, str(at), prefix) if next_key else ""
    return Page(out, at, cont, remaining)


async def _from_store(storage: Storage, res: Resource, ns: str | None, opts: ListOptions,
                      labels: LabelSelector | None, fields: FieldSelector | None) -> Page:
    """The store's own list, when the cache could not catch up in time."""
    objs, rv, cont = await storage.list(res, ns, labels=labels, fields=fields, limit=opts.limit,
                                        continue_token=opts.continue_token or None)
    return Page([Past(res.key(o["metadata"].get("namespace"), str(o["metadata"].get("name", ""))), o)
                 for o in objs], int(rv), cont)


def list_meta(page: Page) -> dict[str, Any]:
    """The ListMeta of the page, for every form a list is answered in (JSON, Table,
    PartialObjectMetadataList)."""
    meta: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
    if page.continue_token:
        meta["continue"] = page.continue_token
    if page.remaining_item_count is not None:
        meta["remainingItemCount"] = page.remaining_item_count
    return meta


def list_parts(res: Resource, page: Page) -> list[bytes]:
    """The list's JSON as pieces that join into it: each item's cached JSON, the commas
    between them, and the list's envelope around them."""
    meta = list_meta(page)
    api_version = res.api_version
    head = orjson.dumps({"kind": res.list_kind_name, "apiVersion": api_version, "metadata": meta})
    parts = [head[:-1] + b',"items":[']
    for i, item in enumerate(page.items):
        if i:
            parts.append(b",")
        if res.custom is not None and item.obj.get("apiVersion") != api_version:
            # A custom resource written at another of its versions (``conversion: None``).
            parts.append(orjson.dumps(dict(item.obj, apiVersion=api_version)))
        else:
            parts.append(item.json())
    parts.append(b"]}")
    return parts


def list_body(res: Resource, page: Page) -> bytes:
    """The list's JSON, composed from each item's cached JSON."""
    return b"".join(list_parts(res, page))


async def send_list(request: web.Request, res: Resource, page: Page) -> web.StreamResponse:
    """The list as the answer. A large one is written a chunk at a time from the items'
    cached JSON: no second copy of the whole list per request (16 clients listing 10,000
    pods at once would otherwise hold 16 copies of 80 MB)."""
    parts = list_parts(res, page)  # before any byte is sent: an unreadable item is still a 500
    total = sum(len(p) for p in parts)
    if total <= CHUNK:
        return web.Response(body=b"".join(parts), content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.content_length = total
    await resp.prepare(request)
    chunk: list[bytes] = []
    size = 0
    for p in parts:
        chunk.append(p)
        size += len(p)
        if size >= CHUNK:
            await resp.write(b"".join(chunk))
            chunk, size = [], 0
    if chunk:
        await resp.write(b"".join(chunk))
    await resp.write_eof()
    return resp


def objects(res: Resource, page: Page) -> list[dict[str, Any]]:
    """The page's objects as read at ``res``'s version (shared: read-only)."""
    api_version = res.api_version
    return [o if o.get("apiVersion") == api_version else dict(o, apiVersion=api_version)
            for o in (item.obj for item in page.items)]
