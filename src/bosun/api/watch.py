"""Streaming watch responses: newline-delimited JSON events over one chunked response."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiohttp import web

from bosun.api import errors
from bosun.api.apf.gate import initialized
from bosun.api.cachedlist import ListOptions, list_page, objects
from bosun.api.handler import Serving
from bosun.api.httputil import flag, int_param, selectors, wants_table
from bosun.api.httputil import include_object as include_object_param
from bosun.api.local import EVENT_SINK
from bosun.api.registry import Resource
from bosun.api.selectors import FieldSelector, LabelSelector
from bosun.api.tables import to_table
from bosun.api.target import Target
from bosun.api.watchcache import CachedEvent, TooOldError

EventSink = Callable[[list[tuple[str, dict[str, Any]]]], Awaitable[None]]
Convert = Callable[[dict[str, Any]], dict[str, Any]]

BOOKMARK_INTERVAL = 5.0
_ADDED_BATCH = 1 << 16  # bytes of initial ADDED events per write
# Without timeoutSeconds a watch ends after a random 30-60 minutes, as Kubernetes does,
# so that long-lived clients spread their reconnections.
DEFAULT_TIMEOUT = (1800, 3600)


def make_filter(
    ns: str | None, labels: LabelSelector | None, fields: FieldSelector | None
) -> Callable[[CachedEvent], str | None]:
    """Which event type a watcher sees. With selectors, an object that starts matching is
    ADDED and one that stops matching is DELETED, as Kubernetes' watch does."""
    if labels is None and fields is None:
        if ns:
            return lambda ev: ev.type if ev.namespace == ns else None
        return lambda ev: ev.type

    def matches(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if labels is not None and not labels.matches(obj.get("metadata", {}).get("labels") or {}):
            return False
        return fields is None or fields.matches(obj)

    def filt(ev: CachedEvent) -> str | None:
        if ns and ev.namespace != ns:
            return None
        if ev.type == "DELETED":
            return "DELETED" if matches(ev.obj) else None
        now = matches(ev.obj)
        if ev.type == "ADDED":
            return "ADDED" if now else None
        before = matches(ev.prev)
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        if before:
            return "DELETED"
        return None

    return filt


async def serve_watch(handler: Serving, request: web.Request, t: Target,
                      convert: Convert | None = None, served: Resource | None = None) -> web.StreamResponse:
    """``convert``: for a version served by conversion (:mod:`bosun.api.conversion`), ``t``
    names the stored version, ``convert`` turns its objects into the ``served`` one."""
    res = t.res
    labels, fields = selectors(request, res)
    rv_param = request.query.get("resourceVersion", "")
    timeout = int_param(request, "timeoutSeconds", 0) or random.randint(*DEFAULT_TIMEOUT)
    bookmarks = flag(request, "allowWatchBookmarks")
    as_table = wants_table(request)
    include_object = include_object_param(request)
    cache = handler.cache
    filt = make_filter(t.namespace, labels, fields)

    initial: list[dict[str, Any]] = []
    if rv_param in ("", "0"):
        # No version: the current state as ADDED events, then changes (Kubernetes semantics).
        page = await list_page(handler.cache, handler.storage, res, t.namespace, ListOptions(rv_param),
                               labels, fields)
        initial, from_rev = objects(res, page), page.resource_version
    else:
        try:
            from_rev = int(rv_param)
        except ValueError as exc:
            raise errors.bad_request(f"resourceVersion: invalid value {rv_param!r}") from exc

    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    # An in-process watcher may take the cache's objects as they are (api/local.py).
    sink: EventSink | None = None if as_table else request.get(EVENT_SINK)
    out: _Output = (_Objects(sink, served or res, convert) if sink is not None
                    else _Lines(resp, _Encoder(res, as_table, include_object, convert, served)))

    try:
        watcher = cache.subscribe(res.group_plural, from_rev, filt)
    except TooOldError as exc:
        await out.error(errors.gone(f"too old resource version: {exc.requested} ({exc.oldest})").status())
        return resp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        if initial:
            await out.added(initial)
        initialized(request)  # API Priority and Fairness: the seat held for the start comes free
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                if watcher.queue.empty():
                    async with asyncio.timeout(min(remaining, BOOKMARK_INTERVAL)):
                        item = await watcher.queue.get()
                else:  # the common case under load: no timer, no task
                    item = watcher.queue.get_nowait()
            except TimeoutError:
                if bookmarks and watcher.queue.empty():
                    await out.bookmark(max(cache.revision, watcher.from_revision))
                continue
            if item is None:
                break  # the cache closed us (overflow or reset): the client re-watches
            batch = [item]
            while not watcher.queue.empty():  # batch whatever else is ready into one write
                nxt = watcher.queue.get_nowait()
                if nxt is None:
                    await out.events(batch)
                    return resp
                batch.append(nxt)
            await out.events(batch)
    except ConnectionResetError:
        return resp  # the client went away
    finally:
        watcher.close()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp


class _Output(Protocol):
    """Where a watch's events go: JSON lines on the response, or objects to a local sink."""

    async def added(self, objs: list[dict[str, Any]]) -> None: ...

    async def events(self, batch: list[tuple[str, CachedEvent]]) -> None: ...

    async def bookmark(self, rev: int) -> None: ...

    async def error(self, status: dict[str, Any]) -> None: ...


class _Lines:
    """Newline-delimited JSON on the chunked response (every HTTP watcher, and tables)."""

    def __init__(self, resp: web.StreamResponse, encoder: _Encoder) -> None:
        self.resp = resp
        self.encoder = encoder

    async def added(self, objs: list[dict[str, Any]]) -> None:
        # In writes of about 64 KiB: aiohttp waits for the client to take a write only past
        # the first, so a client that reads slowly holds the watch here (and its APF seat,
        # held until the initial events are sent) rather than the server buffering them all.
        batch: list[bytes] = []
        size = 0
        for o in objs:
            line = self.encoder.line("ADDED", o)
            batch.append(line)
            size += len(line)
            if size >= _ADDED_BATCH:
                await self.resp.write(b"".join(batch))
                batch, size = [], 0
        if batch:
            await self.resp.write(b"".join(batch))

    async def events(self, batch: list[tuple[str, CachedEvent]]) -> None:
        parts: list[bytes] = []
        event = self.encoder.event
        for t, ev in batch:
            event(t, ev, parts)
        await self.resp.write(b"".join(parts))

    async def bookmark(self, rev: int) -> None:
        await self.resp.write(self.encoder.bookmark(rev))

    async def error(self, status: dict[str, Any]) -> None:
        await self.resp.write(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")


class _Objects:
    """The cache's own objects, handed to an in-process watcher: nothing to encode."""

    def __init__(self, sink: EventSink, res: Resource, convert: Convert | None = None) -> None:
        self.sink = sink
        self.res = res
        self.convert = convert

    async def added(self, objs: list[dict[str, Any]]) -> None:
        conv = self.convert
        await self.sink([("ADDED", conv(o) if conv else o) for o in objs])

    async def events(self, batch: list[tuple[str, CachedEvent]]) -> None:
        conv = self.convert
        await self.sink([(t, conv(ev.obj) if conv else ev.obj) for t, ev in batch])

    async def bookmark(self, rev: int) -> None:
        await self.sink([("BOOKMARK", bookmark_object(self.res, rev))])

    async def error(self, status: dict[str, Any]) -> None:
        await self.sink([("ERROR", status)])


def bookmark_object(res: Resource, rev: int) -> dict[str, Any]:
    return {"kind": res.kind, "apiVersion": res.api_version, "metadata": {"resourceVersion": str(rev)}}


def _envelope(typ: str) -> bytes:
    return b'{"type":"' + typ.encode() + b'","object":'


_ENVELOPES = {t: _envelope(t) for t in ("ADDED", "MODIFIED", "DELETED")}


class _Encoder:
    def __init__(self, res: Resource, as_table: bool, include_object: str, convert: Convert | None = None,
                 served: Resource | None = None) -> None:
        self.res = res  # tables are made from the stored objects (their columns)
        self.as_table = as_table
        self.include_object = include_object
        self.convert = convert
        self.served = served or res
        self.headers_sent = False

    def line(self, typ: str, obj: dict[str, Any]) -> bytes:
        if obj.get("apiVersion") != self.res.api_version:
            # A custom resource watched at another version than it was written at
            # (``conversion: None``): the shared object is copied, never changed.
            obj = dict(obj, apiVersion=self.res.api_version)
        if self.as_table:
            table = to_table(self.res, [obj], include_object=self.include_object, now=datetime.now(UTC))
            table["metadata"] = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            if self.headers_sent:
                table["columnDefinitions"] = []
            self.headers_sent = True
            return orjson.dumps({"type": typ, "object": table}) + b"\n"
        return orjson.dumps({"type": typ, "object": self.convert(obj) if self.convert else obj}) + b"\n"

    def event(self, typ: str, ev: CachedEvent, parts: list[bytes]) -> None:
        """Appends the event's line to ``parts``. The object's JSON is the event's own, built
        once and shared by every watcher of the same version (a selector watch's rewritten
        type changes only the envelope); tables are each watcher's own."""
        if self.as_table:
            parts.append(self.line(typ, ev.obj))
            return
        if self.convert is None and ev.obj.get("apiVersion") == self.res.api_version:
            obj = ev.json()
        else:
            obj = ev.variant_json(f"{self.res.api_version}>{self.served.api_version}", self._variant)
        parts += (_ENVELOPES.get(typ) or _envelope(typ), obj, b"}\n")

    def _variant(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The stored object as this watch's version: the same for every watcher of it."""
        if obj.get("apiVersion") != self.res.api_version:
            obj = dict(obj, apiVersion=self.res.api_version)  # copied: the shared one never changes
        return self.convert(obj) if self.convert else obj

    def bookmark(self, rev: int) -> bytes:
        return orjson.dumps({"type": "BOOKMARK", "object": bookmark_object(self.served, rev)}) + b"\n"
