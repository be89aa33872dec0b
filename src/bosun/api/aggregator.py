"""The aggregation layer: requests for a group version that an APIService hands to another
server are proxied to it, as kube-aggregator does.

A request under ``/apis/<group>/<version>`` that no local kind serves is looked up as the
APIService ``<version>.<group>``; when that names a Service, the request (already
authenticated here) goes over TLS to a ready endpoint of the Service, with the caller's
identity in the ``X-Remote-User`` / ``X-Remote-Group`` headers (upstream's request-header
authentication), and the answer streams back as it comes. An APIService whose backend
cannot be reached answers 503 ServiceUnavailable saying why, as upstream does.

Discovery (``/apis``, both formats) lists the Available aggregated group versions with the
resources their servers report, so kubectl finds ``kubectl get <their kind>``.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from bosun.api import errors
from bosun.api.aggregation import endpoint_of, server_name, tls_context
from bosun.api.errors import APIError
from bosun.api.groupdoc import group_entry
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
DISCOVERY_SECONDS = 10.0
LIST_SECONDS = 1.0
DISCOVERY_TIMEOUT = 5.0


class Aggregator:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._docs: dict[str, tuple[float, dict[str, Any]]] = {}  # "group/version" -> (when, APIResourceList)
        self._listed: tuple[float, list[dict[str, Any]]] = (-LIST_SECONDS - 1, [])

    async def _get(self, res: Resource, ns: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self.storage.get(res, ns, name)
        except APIError as exc:
            if exc.code == 404:
                return None
            raise

    async def _backend(self, spec: dict[str, Any]) -> tuple[str, ssl.SSLContext]:
        """Base URL and TLS context of the server an APIService names; 503 saying why not."""
        ref = spec["service"]
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
        return target, ctx

    async def proxy(self, request: web.Request, group: str, version: str) -> web.StreamResponse | None:
        """Proxy ``request`` if an aggregated APIService serves ``group/version`` (None: none does)."""
        svc_obj = await self._get(APISERVICES, None, f"{version}.{group}")
        spec: dict[str, Any] = (svc_obj or {}).get("spec") or {}
        if not isinstance(spec.get("service"), dict):
            return None
        target, ctx = await self._backend(spec)
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
            raise errors.unavailable(f"error trying to reach service: {exc}") from exc

    async def discovery(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(group, version, APIResourceList) of every Available aggregated APIService, each
        asked of its server at most every ``DISCOVERY_SECONDS``: what discovery adds to the
        local groups, so that kubectl finds the aggregated kinds."""
        now = time.monotonic()
        if now - self._listed[0] > LIST_SECONDS:  # kubectl asks discovery often: one store read a second
            items, _, _ = await self.storage.list(APISERVICES, None)
            self._listed = (now, items)
        items = self._listed[1]
        out = []
        for obj in items:
            spec = obj.get("spec") or {}
            available = any(c.get("type") == "Available" and c.get("status") == "True"
                            for c in (obj.get("status") or {}).get("conditions") or [])
            if not isinstance(spec.get("service"), dict) or not available:
                continue
            gv = f"{spec.get('group')}/{spec.get('version')}"
            cached = self._docs.get(gv)
            if cached is None or now - cached[0] > DISCOVERY_SECONDS:
                try:
                    cached = self._docs[gv] = (now, await self._fetch(spec, gv))
                except (APIError, aiohttp.ClientError, OSError, ValueError) as exc:
                    log.warning("aggregated API %s: discovery failed: %s", gv, exc)
                    continue
            out.append((str(spec.get("group")), str(spec.get("version")), cached[1]))
        return out

    async def _fetch(self, spec: dict[str, Any], gv: str) -> dict[str, Any]:
        target, ctx = await self._backend(spec)
        timeout = aiohttp.ClientTimeout(total=DISCOVERY_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
                f"{target}/apis/{gv}", ssl=ctx, server_hostname=server_name(spec),
                headers={"Accept": "application/json"}) as resp:
            resp.raise_for_status()
            doc = await resp.json(content_type=None)
        if not isinstance(doc, dict):
            raise ValueError(f"not an APIResourceList: {str(doc)[:100]}")
        return doc


def legacy_groups(found: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """APIGroupList entries of the aggregated group versions."""
    groups: dict[str, list[str]] = {}
    for group, version, _ in found:
        groups.setdefault(group, []).append(version)
    return [group_entry(g, vs) for g, vs in groups.items()]


def aggregated_groups(found: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """APIGroupDiscovery entries (apidiscovery.k8s.io/v2) of the aggregated group versions."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for group, version, doc in found:
        resources = []
        for r in doc.get("resources") or []:
            if not isinstance(r, dict) or "/" in str(r.get("name")):
                continue
            entry = {"resource": r.get("name"), "responseKind": {"group": group, "version": version,
                                                                  "kind": r.get("kind")},
                     "scope": "Namespaced" if r.get("namespaced") else "Cluster",
                     "singularResource": r.get("singularName") or "", "verbs": r.get("verbs") or []}
            for key in ("shortNames", "categories"):
                if r.get(key):
                    entry[key] = r[key]
            resources.append(entry)
        groups.setdefault(group, []).append({"version": version, "resources": resources, "freshness": "Current"})
    return [{"metadata": {"name": g}, "versions": vs} for g, vs in groups.items()]
