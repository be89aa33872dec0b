"""The custom metrics API (``custom.metrics.k8s.io/v1beta2``), served from the history as
prometheus-adapter serves it from Prometheus; HPAs' Pods and Object metrics read it.

- ``GET .../namespaces/{ns}/pods/{name|*}/{metric}?labelSelector=``: the newest value of
  ``metric`` for each pod: what its agent scraped last, read live through the metrics API's
  per-node summary cache (as metrics.k8s.io is, so an autoscaler does not wait for the
  history's next round), else the history's newest point;
- ``GET .../namespaces/{ns}/{resource}/{name}/{metric}``: an object's metric, the sum of the
  newest values of the namespace's series labelled ``<kind>=<name>`` (an exporter reporting
  ``queue_depth{deployment="web"}`` describes Deployment web, as the adapter's label mapping
  does);
- ``metricLabelSelector`` narrows the series by their own labels.

Like the metrics API, the group is in discovery without being in the registry: nothing is
stored and there is no watch.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bosun.api import errors
from bosun.api.errors import APIError
from bosun.api.httputil import json_response
from bosun.api.quantity import format_quantity
from bosun.api.registry import find, must_by_plural
from bosun.api.selectors import LabelSelector, SelectorError, parse_label_selector
from bosun.monitoring.history import MetricsHistory, Point
from bosun.monitoring.ingest import pod_custom_samples

if TYPE_CHECKING:
    from bosun.api.metrics import MetricsAPI
    from bosun.api.storage import Storage

GROUP = "custom.metrics.k8s.io"
VERSION = "v1beta2"
GROUP_VERSION = f"{GROUP}/{VERSION}"
PODS = must_by_plural("", "v1", "pods")


def aggregated_item() -> dict[str, Any]:
    """Listed with no resources: which metrics exist changes as pods come and go, so clients
    read ``/apis/custom.metrics.k8s.io/v1beta2`` for them."""
    return {"metadata": {"name": GROUP, "creationTimestamp": None},
            "versions": [{"version": VERSION, "resources": [], "freshness": "Current"}]}


def quantity(value: float) -> str:
    return format_quantity(Decimal(repr(round(value, 9))))


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector(request: web.Request, param: str) -> LabelSelector | None:
    raw = request.query.get(param)
    if not raw:
        return None
    try:
        return parse_label_selector(raw)
    except SelectorError as exc:
        raise errors.bad_request(f"{param}: {exc}") from exc


class CustomMetricsAPI:
    group = GROUP
    version = VERSION

    def __init__(self, storage: Storage, history: MetricsHistory, live: MetricsAPI) -> None:
        self.storage = storage
        self.history = history
        self.live = live

    def resource_list(self) -> dict[str, Any]:
        names = self.history.names()
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
                "resources": [{"name": f"pods/{n}", "singularName": "", "namespaced": True,
                               "kind": "MetricValueList", "verbs": ["get"]} for n in names]}

    async def serve(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        """A GET of ``rest``, the path after ``/apis/custom.metrics.k8s.io/v1beta2/``."""
        if len(rest) == 5 and rest[0] == "namespaces":
            ns, resource, name, metric = rest[1], rest[2], rest[3], rest[4]
            metric_sel = _selector(request, "metricLabelSelector")
            if resource == "pods":
                return json_response(await self._pods(ns, name, metric, _selector(request, "labelSelector"),
                                                      metric_sel))
            return json_response(self._object(ns, resource, name, metric, metric_sel))
        raise APIError(404, "NotFound", "the server could not find the requested resource")

    def _latest(self, metric: str, matchers: dict[str, str],
                metric_sel: LabelSelector | None) -> list[tuple[dict[str, str], Point]]:
        found = self.history.latest(metric, matchers)
        return [(labels, p) for labels, p in found if metric_sel is None or metric_sel.matches(labels)]

    def _item(self, kind: str, api_version: str, ns: str, name: str, metric: str, value: float,
              t: float) -> dict[str, Any]:
        return {"describedObject": {"kind": kind, "namespace": ns, "name": name, "apiVersion": api_version},
                "metric": {"name": metric}, "timestamp": _stamp(t),
                "windowSeconds": int(self.history.config.resolution), "value": quantity(value)}

    async def _pods(self, ns: str, name: str, metric: str, labels: LabelSelector | None,
                    metric_sel: LabelSelector | None) -> dict[str, Any]:
        if name == "*":
            pods, _, _ = await self.storage.list(PODS, ns, labels=labels)
        else:
            try:
                pods = [await self.storage.get(PODS, ns, name)]
            except APIError as exc:
                raise errors.not_found("pods", f"{name}/{metric}", GROUP) from exc
        entries = await self.live.pod_summaries(pods)
        items = []
        now = time.time()
        for p in pods:
            pod = p["metadata"]["name"]
            live = [(labels, Point(now, v)) for labels, v in
                    pod_custom_samples(entries.get(p["metadata"].get("uid", "")), metric)
                    if metric_sel is None or metric_sel.matches(labels)]
            found = live or self._latest(metric, {"namespace": ns, "pod": pod}, metric_sel)
            if found:
                items.append(self._item("Pod", "/v1", ns, pod, metric, sum(p.value for _, p in found),
                                        max(p.time for _, p in found)))
        if name != "*" and not items:
            raise errors.not_found("pods", f"{name}/{metric}", GROUP)
        return {"kind": "MetricValueList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}

    def _object(self, ns: str, resource: str, name: str, metric: str,
                metric_sel: LabelSelector | None) -> dict[str, Any]:
        res = find(resource)
        if res is None:
            raise errors.not_found(resource, name, GROUP)
        found = self._latest(metric, {"namespace": ns, res.singular: name}, metric_sel)
        if not found:
            raise errors.not_found(f"{resource}", f"{name}/{metric}", GROUP)
        item = self._item(res.kind, res.api_version, ns, name, metric, sum(p.value for _, p in found),
                          max(p.time for _, p in found))
        return {"kind": "MetricValueList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": [item]}
