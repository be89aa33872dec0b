"""The aggregation layer: requests for a group version that an APIService hands to another
server are proxied to it, as kube-aggregator does.

A request under ``/apis/<group>/<version>`` that no local kind serves is looked up as the
APIService ``<version>.<group>``; when that names a Service, the request (already
authenticated here) goes over TLS to a ready endpoint of the Service, with the caller's
identity in the ``X-Remote-User`` / ``X-Remote-Group`` headers (upstream's request-header
authentication), and the answer streams back as it comes. An APIService whose backend
cannot be reached answers 503 ServiceUnavailable saying why, as upstream does.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from bosun.api import errors
from bosun.api.aggregation import endpoint_of, server_name, tls_context
from bosun.api.errors import APIError
from bosun.api.registry import Resource, must_by_plural
from bosun.api.requestinfo import USER
from bosun.api.storage import Storage

log = logging.getLogger(__name__)

APISERVICES = must_by_plural("apiregistration.k8s.io", "v1", "apiservices")
SERVICES = must_by_plural("", "v1", "services")
ENDPOINTS = must_by_plural("", "v1", "endpoints")
# What is passed on to the aggregated server (hop-by-hop and credentials are not).
FORWARDED = ("Accept", "Content-Type", "User-Agent", "Accept-Encoding")
RETURNED = ("Content-Type", "Content-Encoding", "Warning", "Cache-Control")


class Aggregator:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def _get(self, res: Resource, ns: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self.storage.get(res, ns, name)
        except APIError as exc:
            if exc.code == 404:
                return None
            raise

    async def proxy(self, request: web.Request, group: str, version: str) -> web.StreamResponse | None:
        """Proxy ``request`` if an aggregated APIService serves ``group/version`` (None: none does)."""
        svc_obj = await self._get(APISERVICES, None, f"{version}.{group}")
        spec: dict[str, Any] = (svc_obj or {}).get("spec") or {}
        ref = spec.get("service")
        if not isinstance(ref, dict):
            return None
        ns, name, port = str(ref.get("namespace")), str(ref.get("name")), int(ref.get("port") or 443)
        svc = await self._get(SERVICES, ns, name)
        if svc is None:
            raise errors.unavailable(f'service/{name} in "{ns}" is not present')
        target = endpoint_of(svc, await self._get(ENDPOINTS, ns, name), port)
        if isinstance(target, tuple):
            raise errors.unavailable(target[1])
        ctx = tls_context(spec)
        if isinstance(ctx, str):
            raise errors.unavailable(ctx)
        headers = CIMultiDict((h, request.headers[h]) for h in FORWARDED if h in request.headers)
        user = request.get(USER)
        if user is not None:
            headers["X-Remote-User"] = user.name
            for g in user.groups:
                headers.add("X-Remote-Group", g)
        body = await request.read()
        url = f"{target}{request.rel_url}"
        try:
            async with aiohttp.ClientSession() as session, session.request(
                    request.method, url, data=body or None, headers=headers, ssl=ctx,
                    server_hostname=server_name(spec)) as upstream:
                out = web.StreamResponse(status=upstream.status,
                                         headers={h: upstream.headers[h] for h in RETURNED if h in upstream.headers})
                await out.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("aggregated API %s/%s at %s: %s", group, version, target, exc)
            raise errors.unavailable(f'error trying to reach service: {exc}') from exc
