"""Who answers the monitoring endpoints in an API process, and where the history lives.

``/metrics/history``, ``/metrics/query``, ``/metrics/query_range``, ``/metrics/rounds``, ``/federate``,
``metrics.k8s.io`` and ``custom.metrics.k8s.io`` read the metrics history and the node agents. With API workers
(:mod:`bosun.api.workers`) there must be one history, not one per process: N histories mean
each node scraped N times, every pod event decoded N times for the collector, and answers
that depend on which process a connection lands on. So:

* :class:`OwnMonitoring` (the store owner, or a server alone) keeps the history, runs the
  collector, scrapes the agents, and answers these paths itself;
* :class:`ForwardedMonitoring` (an API worker) keeps nothing: it authenticates and authorizes
  the request as for any path, then hands method, path, query and the negotiating headers to
  its owner over the worker's channel (the ``monitoring`` operation of
  :mod:`bosun.api.workers.storeserver`), and returns the owner's answer as it is.

The owner answers a forwarded request with :meth:`OwnMonitoring.answer`: the same handlers on
an in-process request, without authentication (the worker did it; only the worker that was
started with that socketpair can ask). Only the monitoring paths are reachable that way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector

from bosun.api import errors, metrics
from bosun.api.errors import APIError
from bosun.api.groupdoc import api_group
from bosun.api.httputil import error_response, json_response
from bosun.api.local import LocalDispatcher
from bosun.monitoring import custom_api
from bosun.monitoring.collector import Collector
from bosun.monitoring.history import HistoryConfig, MetricsHistory
from bosun.monitoring.query_api import QueryAPI
from bosun.monitoring.rounds import PATH as ROUNDS_PATH
from bosun.monitoring.snapshot import FILENAME, Snapshots

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from bosun.api.rest import RestHandler

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (method, path, query pairs, headers) -> (status, headers, body): one forwarded request.
Answer = tuple[int, dict[str, str], bytes]
Forward = Callable[[str, str, list[tuple[str, str]], dict[str, str]], Awaitable[Answer]]

# The request headers an answer depends on; the rest (credentials) stay in the worker.
_REQUEST_HEADERS = ("Accept", "Content-Type")
# Response headers the worker's own HTTP layer sets.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "date", "server"})
GROUPS = (metrics.GROUP, custom_api.GROUP)


class Monitoring(Protocol):
    """The monitoring endpoints of one API process."""

    def add_routes(self, router: web.UrlDispatcher) -> None: ...

    async def answer(self, method: str, path: str, query: list[tuple[str, str]],
                     headers: dict[str, str]) -> Answer: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _add(router: web.UrlDispatcher, history: Handler, query: Handler, query_range: Handler, federate: Handler,
         group: Handler, rounds: Handler) -> None:
    for path, handler in (("/metrics/history", history), ("/metrics/query", query),
                          ("/metrics/query_range", query_range), ("/federate", federate),
                          (ROUNDS_PATH, rounds)):
        router.add_get(path, handler)
    for g in GROUPS:  # every method: the groups answer 405 themselves, as Status objects
        router.add_route("*", f"/apis/{g}{{tail:(?:/.*)?}}", group)


class _Counts(PromCollector):
    """``bosun_metrics_history_*`` on this process's /metrics: present only where the history is."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterable[Metric]:
        rounds = CounterMetricFamily("bosun_metrics_history_collections",
                                     "Rounds of reading every node agent into the metrics history.")
        rounds.add_metric([], self.collector.ticks)
        series = GaugeMetricFamily("bosun_metrics_history_series", "Series in the metrics history.")
        series.add_metric([], len(self.collector.history))
        return [rounds, series]


@web.middleware
async def _as_status(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A forwarded request's errors as ``Status`` answers, as the API's own middleware does."""
    try:
        return await handler(request)
    except APIError as exc:
        return error_response(exc)
    except web.HTTPNotFound:
        return error_response(APIError(404, "NotFound", "the server could not find the requested resource"))
    except web.HTTPMethodNotAllowed:
        return error_response(errors.method_not_allowed(f"method {request.method} is not allowed here"))
    except Exception:
        log.exception("internal error serving forwarded %s %s", request.method, request.path)
        return error_response(errors.internal("an internal error occurred; see the server log"))


class ServedGroup(Protocol):
    """An API group this process serves itself, outside the registry (metrics.k8s.io,
    custom.metrics.k8s.io): its discovery documents and GETs under its one version."""

    group: str
    version: str

    def resource_list(self) -> dict[str, Any]: ...

    async def serve(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        """A GET of ``rest`` (never empty), the path after ``/apis/<group>/<version>/``."""
        ...


class OwnMonitoring:
    """The history, its collector and the agents' scrapes, in this process."""

    def __init__(self, rest: RestHandler, config: HistoryConfig | None, registry: CollectorRegistry,
                 data_dir: Path | None = None) -> None:
        self.metrics_api = metrics.MetricsAPI(rest)
        self.history = MetricsHistory(config)
        self.collector = Collector(rest.storage, rest.cache, self.metrics_api, self.history)
        # Where the history survives a restart (none: an in-process app of the tests').
        self.snapshots = (Snapshots(self.history, data_dir / FILENAME, self.history.config.snapshot_interval,
                                    self.collector.writing) if data_dir is not None else None)
        self.custom_api = custom_api.CustomMetricsAPI(rest.storage, self.history, self.metrics_api)
        self.query_api = QueryAPI(self.history)
        registry.register(_Counts(self.collector))
        # What forwarded requests go through: only the monitoring paths, no authentication.
        app = web.Application()
        self.add_routes(app.router)
        self._forwarded = LocalDispatcher(app, [_as_status])

    def add_routes(self, router: web.UrlDispatcher) -> None:
        _add(router, self.query_api.history_handler, self.query_api.query_handler,
             self.query_api.query_range_handler, self.query_api.federate_handler, self._group,
             self.collector.rounds.handler)

    async def _group(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p][1:]  # after "apis"
        api: ServedGroup = self.metrics_api if parts[0] == metrics.GROUP else self.custom_api
        if len(parts) == 1:
            return json_response(api_group(api.group, [api.version]))
        if parts[1] != api.version:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        if len(parts) == 2:
            return json_response(api.resource_list())
        if request.method != "GET":
            raise errors.method_not_allowed(f"the server does not allow this method on the requested resource "
                                            f"({request.method})")
        return await api.serve(request, parts[2:])

    async def answer(self, method: str, path: str, query: list[tuple[str, str]],
                     headers: dict[str, str]) -> Answer:
        status, out, body = await self._forwarded.request(method, path, query, None, headers)
        return status, {k: v for k, v in out.items() if k.lower() not in _HOP_HEADERS}, body

    async def start(self) -> None:
        if self.snapshots is not None:
            await self.snapshots.start()
        await self.collector.start()

    async def stop(self) -> None:
        await self.collector.stop()
        if self.snapshots is not None:
            await self.snapshots.stop()
        await self._forwarded.close()
        await self.metrics_api.close()


class ForwardedMonitoring:
    """An API worker's monitoring endpoints: every one answered by the store owner."""

    def __init__(self, forward: Forward) -> None:
        self.forward = forward

    def add_routes(self, router: web.UrlDispatcher) -> None:
        _add(router, self._handle, self._handle, self._handle, self._handle, self._handle, self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {h: request.headers[h] for h in _REQUEST_HEADERS if h in request.headers}
        status, out, body = await self.answer(request.method, request.path, list(request.query.items()), headers)
        return web.Response(status=status, body=body, headers=out)

    async def answer(self, method: str, path: str, query: list[tuple[str, str]],
                     headers: dict[str, str]) -> Answer:
        return await self.forward(method, path, query, headers)

    async def start(self) -> None:
        """Nothing runs here: the owner collects."""

    async def stop(self) -> None:
        """Nothing to stop."""
