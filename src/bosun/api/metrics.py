"""The resource metrics API (``metrics.k8s.io/v1beta1``) that ``kubectl top`` and HPAs read.

In Kubernetes this group is served by metrics-server behind the aggregation layer; Bosun
serves it in the API server itself, computed on request from the node agents' Summary API
(``GET /stats/summary``, see :mod:`bosun.agent.stats`) with a short per-node cache. Nothing is
stored: the group appears in discovery through the fragments below, not the registry, so
it has no storage, watch or OpenAPI schema, exactly as an aggregated API looks to clients.

Shapes follow metrics-server: CPU in nanocores (``"12345n"``), memory in ``Ki``, a
``timestamp`` and the ``window`` the CPU rate was measured over.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bosun.api import errors
from bosun.api.errors import APIError
from bosun.api.httputil import json_response
from bosun.api.registry import must_by_plural
from bosun.api.selectors import LabelSelector, SelectorError, parse_label_selector

if TYPE_CHECKING:
    from bosun.api.rest import RestHandler

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
# How long one agent's summary is reused; kubectl top twice in a row costs one scrape.
CACHE_SECONDS = 3.0
# An agent that did not answer is not asked again for a while (hollow nodes have no agent;
# one dead node must not make every `kubectl top` wait for its timeout).
FAILURE_CACHE_SECONDS = 30.0
AGENT_TIMEOUT = 5.0
AGENT_CONNECT_TIMEOUT = 2.0
# Agents asked at once, below the client's connection limit (100): a round over thousands of
# nodes otherwise parks a waiter per node in aiohttp's connector, which reshuffles all of
# them on every released connection (a few percent of a 5,000-node server's CPU, where the
# hollow nodes' agents do not answer).
FETCH_CONCURRENCY = 64

# plural -> (kind, namespaced)
_RESOURCES = {"nodes": ("NodeMetrics", False), "pods": ("PodMetrics", True)}
_VERBS = ["get", "list"]


NODES, PODS = must_by_plural("", "v1", "nodes"), must_by_plural("", "v1", "pods")

# -- discovery fragments ------------------------------------------------------------------------


def resource_list() -> dict[str, Any]:
    """``GET /apis/metrics.k8s.io/v1beta1``."""
    return {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
        "resources": [{"name": p, "singularName": "", "namespaced": ns, "kind": k, "verbs": list(_VERBS)}
                      for p, (k, ns) in _RESOURCES.items()],
    }


def aggregated_item() -> dict[str, Any]:
    """This group's item in the aggregated discovery document for ``/apis``."""
    return {
        "metadata": {"name": GROUP, "creationTimestamp": None},
        "versions": [{
            "version": VERSION,
            "resources": [{
                "resource": p,
                "responseKind": {"group": GROUP, "version": VERSION, "kind": k},
                "scope": "Namespaced" if ns else "Cluster",
                "singularResource": "",
                "verbs": list(_VERBS),
            } for p, (k, ns) in _RESOURCES.items()],
            "freshness": "Current",
        }],
    }


# -- formatting ---------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_quantity(nanocores: int | float) -> str:
    return f"{max(int(nanocores), 0)}n"


def memory_quantity(nbytes: int | float) -> str:
    return f"{max(int(nbytes), 0) // 1024}Ki"


def window(seconds: float) -> str:
    """A Go duration string (metav1.Duration), as metrics-server writes it."""
    return f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".") + "s"


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata") or {}
    out: dict[str, Any] = {"name": m.get("name", ""), "creationTimestamp": _now()}
    if m.get("namespace"):
        out["namespace"] = m["namespace"]
    if m.get("labels"):
        out["labels"] = dict(m["labels"])
    return out


def node_metrics(node: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    s = summary.get("node") or {}
    cpu, mem = s.get("cpu") or {}, s.get("memory") or {}
    if "usageNanoCores" not in cpu or "workingSetBytes" not in mem:
        return None
    return {
        "kind": "NodeMetrics", "apiVersion": GROUP_VERSION, "metadata": _meta(node),
        "timestamp": cpu.get("time") or _now(), "window": window(float(summary.get("windowSeconds") or 0)),
        "usage": {"cpu": cpu_quantity(cpu["usageNanoCores"]), "memory": memory_quantity(mem["workingSetBytes"])},
    }


def pod_metrics(pod: dict[str, Any], entry: dict[str, Any], default_window: float) -> dict[str, Any]:
    containers = []
    ts = ""
    longest = 0.0
    for c in entry.get("containers") or []:
        cpu, mem = c.get("cpu") or {}, c.get("memory") or {}
        ts = ts or cpu.get("time", "")
        longest = max(longest, float(c.get("windowSeconds") or default_window))
        containers.append({"name": c.get("name", ""), "usage": {
            "cpu": cpu_quantity(cpu.get("usageNanoCores") or 0),
            "memory": memory_quantity(mem.get("workingSetBytes") or 0)}})
    return {
        "kind": "PodMetrics", "apiVersion": GROUP_VERSION, "metadata": _meta(pod),
        "timestamp": ts or _now(), "window": window(longest or default_window), "containers": containers,
    }


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": f"{kind}List", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}


# -- serving ------------------------------------------------------------------------------------


def agent_url(node: dict[str, Any]) -> str | None:
    """The node agent's base URL from the Node's status (as for logs), or None."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or [] if isinstance(a, dict)}
    host = addrs.get("InternalIP") or addrs.get("Hostname")
    if not port or not host:
        return None
    host = f"[{host}]" if ":" in str(host) else str(host)
    return f"https://{host}:{port}"


class MetricsAPI:
    group = GROUP
    version = VERSION

    def __init__(self, rest: RestHandler) -> None:
        self.rest = rest
        self._session: aiohttp.ClientSession | None = None
        # node -> (expires, the document or None for a failure, when its fetch began)
        self._cache: dict[str, tuple[float, dict[str, Any] | None, float]] = {}
        self._inflight: dict[str, asyncio.Task[dict[str, Any] | None]] = {}
        self._fetching = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self, url: str) -> dict[str, Any] | None:
        if self._session is None:
            # Agents serve self-signed certificates (kubelet's default); our bearer token
            # authenticates us to them.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=False),
                timeout=aiohttp.ClientTimeout(total=AGENT_TIMEOUT, sock_connect=AGENT_CONNECT_TIMEOUT))
        headers = {"Authorization": f"Bearer {self.rest.node_token}"} if self.rest.node_token else {}
        try:
            # The wait for a turn counts against the agent's time, as the wait for a
            # connection did: a round over many dead agents still ends within AGENT_TIMEOUT.
            async with (asyncio.timeout(AGENT_TIMEOUT), self._fetching,
                        self._session.get(f"{url}/stats/summary", headers=headers) as resp):
                if resp.status != 200:
                    return None
                data = await resp.json(content_type=None)
                return data if isinstance(data, dict) else None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None

    async def summary(self, node: dict[str, Any], max_age: float | None = None) -> dict[str, Any] | None:
        """The node's summary, cached for :data:`CACHE_SECONDS` (a document fetched more than
        ``max_age`` seconds ago is fetched again: the history's round wants the agents' latest
        scrapes); None when its agent is not reachable (the node is then left out, as
        metrics-server does; that answer is kept :data:`FAILURE_CACHE_SECONDS` whatever ``max_age``)."""
        name = node["metadata"]["name"]
        url = agent_url(node)
        if url is None:
            return None
        hit = self._cache.get(name)
        now = time.monotonic()
        if hit is not None and hit[0] > now and (max_age is None or hit[1] is None or now - hit[2] <= max_age):
            return hit[1]
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.ensure_future(self._fetch(url))
            self._inflight[name] = task
            try:
                data = await task
            finally:
                self._inflight.pop(name, None)
            ttl = CACHE_SECONDS if data is not None else FAILURE_CACHE_SECONDS
            self._cache[name] = (time.monotonic() + ttl, data, now)
            return data
        return await asyncio.shield(task)

    def resource_list(self) -> dict[str, Any]:
        return resource_list()

    async def serve(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        """A GET of ``rest``, the path after ``/apis/metrics.k8s.io/v1beta1/``."""
        if request.query.get("watch", "").lower() in ("1", "true"):
            raise errors.method_not_allowed("watch is not supported on the metrics API")
        try:
            labels = parse_label_selector(request.query["labelSelector"]) if request.query.get(
                "labelSelector") else None
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        if rest[0] == "nodes" and len(rest) <= 2:
            return json_response(await self._nodes(rest[1] if len(rest) == 2 else None, labels))
        if rest[0] == "pods" and len(rest) == 1:
            return json_response(await self._pods(None, None, labels))
        if len(rest) in (3, 4) and rest[0] == "namespaces" and rest[2] == "pods":
            return json_response(await self._pods(rest[1], rest[3] if len(rest) == 4 else None, labels))
        raise APIError(404, "NotFound", "the server could not find the requested resource")

    async def _nodes(self, name: str | None, labels: LabelSelector | None) -> dict[str, Any]:
        storage = self.rest.storage
        if name is not None:
            node = await storage.get(NODES, None, name)
            summary = await self.summary(node)
            out = node_metrics(node, summary) if summary else None
            if out is None:
                raise errors.not_found("nodemetrics", name, GROUP)
            return out
        nodes, _, _ = await storage.list(NODES, None, labels=labels)
        summaries = await asyncio.gather(*(self.summary(n) for n in nodes))
        items = [m for n, s in zip(nodes, summaries, strict=True) if s for m in [node_metrics(n, s)] if m]
        return _list("NodeMetrics", items)

    async def _pods(self, ns: str | None, name: str | None, labels: LabelSelector | None) -> dict[str, Any]:
        storage = self.rest.storage
        if name is not None:
            assert ns is not None
            pods = [await storage.get(PODS, ns, name)]
        else:
            pods, _, _ = await storage.list(PODS, ns, labels=labels)
        node_names = {str(p.get("spec", {}).get("nodeName")) for p in pods
                      if p.get("spec", {}).get("nodeName") and p.get("status", {}).get("phase") == "Running"}
        nodes = await asyncio.gather(*(self.node_or_none(n) for n in sorted(node_names)))
        summaries = await asyncio.gather(*(self.summary(n) for n in nodes if n is not None))
        by_uid: dict[str, tuple[dict[str, Any], float]] = {}
        for s in summaries:
            if s:
                for entry in s.get("pods") or []:
                    uid = (entry.get("podRef") or {}).get("uid")
                    if uid:
                        by_uid[uid] = (entry, float(s.get("windowSeconds") or 0))
        items = []
        for p in pods:
            hit = by_uid.get(p["metadata"].get("uid", ""))
            if hit is not None and hit[0].get("containers"):
                items.append(pod_metrics(p, *hit))
        if name is not None:
            if not items:
                raise errors.not_found("podmetrics", name, GROUP)
            return items[0]
        return _list("PodMetrics", items)

    async def pod_summaries(self, pods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The Summary API entries of ``pods`` (by uid) from their nodes' agents (cached as
        :meth:`summary`); pods whose agent does not answer are left out."""
        node_names = {str(p.get("spec", {}).get("nodeName")) for p in pods if p.get("spec", {}).get("nodeName")}
        nodes = await asyncio.gather(*(self.node_or_none(n) for n in sorted(node_names)))
        summaries = await asyncio.gather(*(self.summary(n) for n in nodes if n is not None))
        out: dict[str, dict[str, Any]] = {}
        for s in summaries:
            for entry in (s or {}).get("pods") or []:
                uid = (entry.get("podRef") or {}).get("uid")
                if uid:
                    out[uid] = entry
        return out

    async def node_or_none(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.rest.storage.get(NODES, None, name)
        except APIError:
            return None
