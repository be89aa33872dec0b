"""Async REST client for the Kubernetes API that Bosun serves.

Every component (controllers, scheduler, agent, CLI) reaches the cluster only through this
client, so it carries requests over one transport per :class:`Client` (a pooled HTTPS
session, or the API server's in-process dispatcher), turns every refusal into
an :class:`ApiError` carrying the server's ``Status``, and exposes watch as an async
iterator whose only special case callers must handle is 410 Gone.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypedDict, Unpack

import aiohttp
import orjson

from bosun.api.kinds import Kind
from bosun.client.errors import ApiError
from bosun.client.failover import FailoverTransport
from bosun.client.kubeconfig import ClusterConfig, load_kubeconfig
from bosun.client.transport import HttpTransport, LocalTransport, Transport

JSON = dict[str, Any]
JSONList = list[Any]  # spelled once here: inside Client, `list` is the method

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


def resource_path(
    resource: Kind,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The URL path of a collection or one object (and its subresource)."""
    base = f"/api/{resource.version}" if not resource.group else f"/apis/{resource.group_version}"
    if resource.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{resource.plural}"
    if name:
        path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
    return path


def ssl_context(config: ClusterConfig) -> ssl.SSLContext | bool:
    if not config.server.startswith("https"):
        return False
    if config.insecure:
        return False
    ctx = ssl.create_default_context(cadata=config.ca_data.decode() if config.ca_data else None)
    if config.client_cert and config.client_key:
        # The ssl module loads client credentials only from files; keep them just long enough.
        with tempfile.TemporaryDirectory(prefix="bosun-client-") as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for p, data in ((cert, config.client_cert), (key, config.client_key)):
                fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert, key)
    return ctx


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (params or {}).items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


# How often a request refused 429 with Retry-After (API Priority and Fairness: refused before
# anything was done, so any verb may be sent again) is retried, as client-go does.
TOO_MANY_RETRIES = 10
MAX_RETRY_AFTER = 10.0


def _retry_after(status: int, headers: Mapping[str, str]) -> float | None:
    """Seconds to wait before sending again, or None: not a 429 that asks for a retry."""
    if status != 429:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(headers.get("Retry-After", ""))))
    except ValueError:
        return None


class RequestOptions(TypedDict, total=False):
    """The keywords of :meth:`Client.request_raw`, which :meth:`Client.request` passes on."""

    params: Mapping[str, Any] | None
    body: JSON | JSONList | bytes | None
    content_type: str
    accept: str
    headers: Mapping[str, str] | None


class Client:
    """One connection pool to one API server, as one user."""

    def __init__(
        self, config: ClusterConfig, *, timeout: float = 30, transport: Transport | None = None,
    ) -> None:
        """``transport`` defaults to HTTP(S) to ``config.server``; a component inside the API
        server's process passes a :class:`~bosun.client.transport.LocalTransport`."""
        self.config = config
        self.timeout = timeout
        self._ssl = ssl_context(config)
        if transport is None and config.servers:  # several managers: whichever answers
            transport = FailoverTransport([config.server, *config.servers], self._ssl, timeout)
        self.transport: Transport = transport or HttpTransport(config.server, self._ssl, timeout)
        self._headers: dict[str, str] = {"User-Agent": "bosun-client/0.1"}
        if config.token:
            self._headers["Authorization"] = f"Bearer {config.token}"

    def set_token(self, token: str) -> None:
        """Authenticate every later request with ``token`` (a node trading its join token for
        its own credential keeps its connections and informers)."""
        self.config.token = token
        self._headers["Authorization"] = f"Bearer {token}"

    @property
    def server(self) -> str:
        """The server requests go to now (with several managers, the one that answered last)."""
        if isinstance(self.transport, FailoverTransport | HttpTransport):
            return self.transport.server
        return self.config.server

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> Client:
        return cls(load_kubeconfig(path, context))

    @property
    def namespace(self) -> str:
        return self.config.namespace

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- raw requests -------------------------------------------------------------------------

    @staticmethod
    def _raise_for(status: int, raw: bytes) -> None:
        if status < 400:
            return
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        text = raw.decode("utf-8", "replace").strip() if body is None else ""
        raise ApiError.from_status(status, body, text)

    async def request_raw(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: JSON | JSONList | bytes | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """Send one request and return the response body; non-2xx raises :class:`ApiError`."""
        hdrs = dict(self._headers)
        hdrs["Accept"] = accept
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            hdrs["Content-Type"] = content_type
        if headers:
            hdrs.update(headers)
        query = _clean_params(params)
        for attempt in range(TOO_MANY_RETRIES + 1):
            status, got, raw = await self.transport.request(method, path, query, data, hdrs)
            wait = _retry_after(status, got)
            if wait is None or attempt == TOO_MANY_RETRIES:
                break
            await asyncio.sleep(wait)
        self._raise_for(status, raw)
        return raw

    async def request(self, method: str, path: str, **options: Unpack[RequestOptions]) -> JSON:
        """:meth:`request_raw` with the JSON answer decoded (``{}`` when the body is empty)."""
        raw = await self.request_raw(method, path, **options)
        if not raw:
            return {}
        out = orjson.loads(raw)
        return out if isinstance(out, dict) else {"items": out}

    # -- typed verbs ----------------------------------------------------------------------------

    def _ns(self, resource: Kind, namespace: str | None, obj: JSON | None = None) -> str | None:
        if not resource.namespaced:
            return None
        if namespace:
            return namespace
        if obj is not None:
            ns = (obj.get("metadata") or {}).get("namespace")
            if ns:
                return str(ns)
        return self.config.namespace

    async def get(
        self, resource: Kind, name: str, namespace: str | None = None, *,
        subresource: str | None = None,
    ) -> JSON:
        return await self.request(
            "GET", resource_path(resource, self._ns(resource, namespace), name, subresource)
        )

    async def list(
        self,
        resource: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> JSON:
        """One page of a list; ``namespace=None`` lists across all namespaces."""
        params = {
            "labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit,
            "continue": continue_, "resourceVersion": resource_version,
        }
        return await self.request("GET", resource_path(resource, namespace), params=params)

    async def list_all(
        self,
        resource: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[JSONList, str]:
        """Every item, following ``continue``; the resourceVersion is the one to watch from."""
        items: JSONList = []
        token: str | None = None
        rv = ""
        while True:
            page = await self.list(
                resource, namespace, label_selector=label_selector, field_selector=field_selector,
                limit=page_size, continue_=token,
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not rv:
                # Every page of one paged list is a snapshot at the first page's revision.
                rv = str(meta.get("resourceVersion") or "")
            token = meta.get("continue") or None
            if not token:
                return items, rv

    async def create(
        self,
        resource: Kind,
        obj: JSON,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str | None = None,
    ) -> JSON:
        ns = self._ns(resource, namespace, obj)
        if subresource:
            name = (obj.get("metadata") or {}).get("name")
            path = resource_path(resource, ns, str(name), subresource)
        else:
            path = resource_path(resource, ns)
        params = {"dryRun": "All" if dry_run else None, "fieldValidation": field_validation}
        return await self.request("POST", path, params=params, body=obj)

    async def update(
        self, resource: Kind, obj: JSON, *, subresource: str | None = None, dry_run: bool = False,
    ) -> JSON:
        """PUT the whole object; its metadata.resourceVersion makes this compare-and-swap."""
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ValueError("update needs metadata.name")
        path = resource_path(resource, self._ns(resource, None, obj), str(name), subresource)
        return await self.request("PUT", path, params={"dryRun": "All" if dry_run else None}, body=obj)

    async def patch(
        self,
        resource: Kind,
        name: str,
        patch: JSON | JSONList,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> JSON:
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"patch_type must be one of {sorted(PATCH_CONTENT_TYPES)}") from None
        path = resource_path(resource, self._ns(resource, namespace), name, subresource)
        return await self.request(
            "PATCH", path, params={"dryRun": "All" if dry_run else None}, body=patch,
            content_type=content_type,
        )

    async def delete(
        self,
        resource: Kind,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: JSON | None = None,
        dry_run: bool = False,
    ) -> JSON:
        """Delete; returns the Status or the object (when finalizers keep it a while)."""
        opts: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            opts["preconditions"] = preconditions
        if dry_run:
            opts["dryRun"] = ["All"]
        path = resource_path(resource, self._ns(resource, namespace), name)
        # dryRun goes in the query too: Kubernetes accepts either, so both are honoured.
        return await self.request("DELETE", path, params={"dryRun": "All" if dry_run else None}, body=opts)

    # -- streaming ------------------------------------------------------------------------------

    async def stream(
        self, path: str, params: Mapping[str, Any] | None = None, *, read_timeout: float | None = None,
    ) -> AsyncIterator[bytes]:
        """Yield the body of a long-running GET as it arrives (``pods/log?follow=true``).

        ``read_timeout`` bounds the silence between chunks, so a connection that died without
        a FIN does not hang the caller forever.
        """
        async with self.transport.stream(path, _clean_params(params), self._headers, read_timeout) as resp:
            if resp.status >= 400:
                self._raise_for(resp.status, await resp.read())
            async for chunk in resp.chunks():
                yield chunk

    async def watch(
        self,
        resource: Kind,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
        shared_objects: bool = False,
    ) -> AsyncIterator[JSON]:
        """Yield watch events until the server ends the stream.

        A 410 (HTTP status or an ERROR event carrying a Status) raises ``ApiError`` with
        status 410 so that the caller relists; other ERROR events raise their own status.
        ``shared_objects``: over the in-process transport, the events' objects are the API
        server's own (no JSON encoding or parsing); the caller promises never to modify them.
        """
        params = {
            "watch": "1", "resourceVersion": resource_version, "labelSelector": label_selector,
            "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": "true" if allow_bookmarks else None,
        }
        # The server must end the watch after timeout_seconds; silence well past that means
        # the connection is dead.
        read_timeout = timeout_seconds + self.timeout if timeout_seconds else None
        if shared_objects and isinstance(self.transport, LocalTransport):
            async for event in self._shared_events(resource_path(resource, namespace), params, read_timeout):
                yield event
            return
        async for line in self._lines(resource_path(resource, namespace), params, read_timeout):
            event = orjson.loads(line)
            if event.get("type") == "ERROR":
                obj = event.get("object") or {}
                raise ApiError.from_status(int(obj.get("code") or 500), obj, "watch error")
            yield event

    async def _shared_events(
        self, path: str, params: Mapping[str, Any], read_timeout: float | None,
    ) -> AsyncIterator[JSON]:
        assert isinstance(self.transport, LocalTransport)
        async with self.transport.event_stream(path, _clean_params(params), self._headers, read_timeout) as resp:
            if resp.status >= 400:
                self._raise_for(resp.status, await resp.read())
            async for typ, obj in resp.events():
                if typ == "ERROR":
                    raise ApiError.from_status(int(obj.get("code") or 500), obj, "watch error")
                yield {"type": typ, "object": obj}

    async def _lines(
        self, path: str, params: Mapping[str, Any], read_timeout: float | None,
    ) -> AsyncIterator[bytes]:
        # Split lines ourselves: aiohttp's readline refuses lines above 128 KiB, and one
        # event carries a whole object.
        buf = bytearray()
        async for chunk in self.stream(path, params, read_timeout=read_timeout):
            start = len(buf)
            buf += chunk
            nl = buf.find(b"\n", start)
            while nl >= 0:
                line = bytes(buf[:nl]).strip()
                del buf[: nl + 1]
                if line:
                    yield line
                nl = buf.find(b"\n")
        if buf.strip():
            yield bytes(buf).strip()


TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
"""What a caller retries on besides :class:`ApiError`: the server could not be reached."""
