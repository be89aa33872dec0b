"""The API server's own Prometheus metrics (``GET /metrics``), under kube-apiserver's names so
existing dashboards and alerts work: requests by verb/group/version/resource/code and their
latency, requests in flight, open watches, and the latency of every store call.

Each server has its own registry (tests run several servers in one process).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from bosun.api.catalog import BUILTIN
from bosun.api.metricfamily import Family
from bosun.api.target import Lookup
from bosun.api.workers.metricspeers import merge
from bosun.store.base import KeyValue, Store, WatchEvent

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 10, 30, 60)
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
_EXTRA_GROUPS = {("metrics.k8s.io", "v1beta1"): {"nodes", "pods"}}


def classify(method: str, path: str, watch: bool, served: Lookup = BUILTIN) -> tuple[str, str, str, str, str]:
    """(verb, group, version, resource, subresource) of a request, kube-apiserver style
    (LIST and WATCH told apart from GET). Paths naming no known resource get an empty
    resource, so a client cannot blow up the number of series with made-up paths."""
    parts = [p for p in path.split("/") if p]
    group = version = resource = sub = ""
    name = None
    if len(parts) >= 2 and parts[0] == "api":
        version, rest = parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        rest = []
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        rest = rest[2:]
    if rest:
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if served.by_plural(group, version, resource) is None and resource not in _EXTRA_GROUPS.get(
                (group, version), ()):
            group = version = resource = sub = ""
            name = None
    if not resource:
        group = version = ""
    verb = method.upper()
    if verb == "GET" and resource:
        verb = "WATCH" if watch else ("GET" if name else "LIST")
    elif verb == "DELETE" and resource and name is None:
        verb = "DELETECOLLECTION"
    if sub in ("exec", "attach", "portforward", "proxy"):
        verb = "CONNECT"
    return verb, group, version, resource, sub


class _Collector(Collector):
    def __init__(self, families: Iterable[Family]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return [f.family() for f in self.families]


class APIMetrics:
    def __init__(self, served: Lookup = BUILTIN) -> None:
        # What the server serves (its catalog: custom resources are labelled too).
        self.served = served
        # The other API processes' expositions (bosun.api.workers.metricspeers), if any.
        self.peers: Callable[[], Awaitable[list[bytes]]] | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["verb", "group", "version", "resource", "subresource"]
        self.requests = Family("counter", "apiserver_request", "Requests by verb, resource and HTTP code.",
                                [*labels, "code"])
        self.latency = Family("histogram", "apiserver_request_duration_seconds",
                               "Response latency (watches and other long-running requests excluded).",
                               labels, _LATENCY_BUCKETS)
        self.inflight = Family("gauge", "apiserver_current_inflight_requests", "Requests being served.",
                                ["request_kind"])
        self.longrunning = Family("gauge", "apiserver_longrunning_requests", "Open watches and streams.",
                                   ["verb", "group", "version", "resource"])
        self.watches = Family("counter", "apiserver_watch_requests", "Watches opened.",
                               ["group", "version", "resource"])
        self.store_latency = Family("histogram", "etcd_request_duration_seconds",
                                     "Latency of store calls by operation (SQLite or etcd).",
                                     ["operation"], _STORE_BUCKETS)
        self.store_errors = Family("counter", "etcd_request_errors", "Store calls that raised.", ["operation"])
        self.registry.register(_Collector([
            self.requests, self.latency, self.inflight, self.longrunning, self.watches,
            self.store_latency, self.store_errors,
        ]))

    def include(self, families: Iterable[Family]) -> None:
        """Families counted elsewhere (the admission chain's) in this server's exposition."""
        self.registry.register(_Collector(families))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        watch = request.query.get("watch", "").lower() in ("1", "true")
        verb, group, version, resource, sub = key = classify(request.method, request.path, watch, self.served)
        long_running = verb in ("WATCH", "CONNECT") or (
            sub == "log" and request.query.get("follow", "").lower() in ("1", "true"))
        kind = ("mutating",) if request.method in _MUTATING else ("readOnly",)
        started = time.perf_counter()
        code = 500
        self.inflight.add(kind)
        if long_running:
            self.longrunning.add((verb, group, version, resource))
        if verb == "WATCH":
            self.watches.add((group, version, resource))
        try:
            resp = await handler(request)
            code = resp.status
            return resp
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            self.inflight.add(kind, -1)
            if long_running:
                self.longrunning.add((verb, group, version, resource), -1)
            else:
                self.latency.observe(key, time.perf_counter() - started)
            self.requests.add((*key, str(code)))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def handler(self, request: web.Request) -> web.Response:
        body = self.exposition()
        if self.peers is not None:  # API workers: one exposition for all the processes
            body = merge([body, *await self.peers()])
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    def timed_store(self, store: Store) -> Store:
        return TimedStore(store, self)


class TimedStore:
    """A :class:`~bosun.store.base.Store` that records how long each call takes."""

    def __init__(self, inner: Store, metrics: APIMetrics) -> None:
        self.inner = inner
        self._m = metrics

    async def _timed(self, op: str, aw: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await aw
        except Exception:
            self._m.store_errors.add((op,))
            raise
        finally:
            self._m.store_latency.observe((op,), time.perf_counter() - started)

    async def get(self, key: str) -> KeyValue | None:
        return await self._timed("get", self.inner.get(key))

    async def list(self, prefix: str, *, start_key: str = "", limit: int = 0) -> tuple[list[KeyValue], int]:
        return await self._timed("list", self.inner.list(prefix, start_key=start_key, limit=limit))

    async def count(self, prefix: str) -> int:
        return await self._timed("count", self.inner.count(prefix))

    async def create(self, key: str, value: bytes) -> int:
        return await self._timed("create", self.inner.create(key, value))

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        return await self._timed("update", self.inner.update(key, value, expected_revision))

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return await self._timed("delete", self.inner.delete(key, expected_revision))

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(prefix, from_revision)

    async def compact(self, revision: int) -> None:
        await self._timed("compact", self.inner.compact(revision))

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()
