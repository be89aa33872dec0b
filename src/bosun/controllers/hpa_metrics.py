"""The HPA controller's metrics, read through the API like every other client reads them:
resource usage from ``metrics.k8s.io`` and custom metrics from ``custom.metrics.k8s.io``.
Values are in milli-units, as upstream's ``MilliValue``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bosun.api.quantity import parse_quantity
from bosun.api.registry import by_kind
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.controllers._common import parse_time
from bosun.controllers.hpa_replicas import MetricError, PodMetric

Obj = dict[str, Any]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def milli(q: Any) -> float:
    return float(parse_quantity(str(q))) * 1000


def _window(raw: Any) -> float:
    m = _DURATION.match(str(raw or ""))
    return float(m.group(1)) if m else 0.0


class MetricsClient:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def resource(self, ns: str, selector: str, resource: str, container: str = "") -> dict[str, PodMetric]:
        try:
            out = await self.client.request("GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
                                            params={"labelSelector": selector})
        except ApiError as exc:
            raise MetricError(f"unable to get metrics for resource {resource}: {exc}") from exc
        metrics: dict[str, PodMetric] = {}
        for item in out.get("items") or []:
            total, found = 0.0, False
            for c in item.get("containers") or []:
                if container and c.get("name") != container:
                    continue
                usage = (c.get("usage") or {}).get(resource)
                if usage is not None:
                    total += milli(usage)
                    found = True
            if found:
                metrics[item["metadata"]["name"]] = PodMetric(
                    total, parse_time(item.get("timestamp")) or datetime.now(UTC), _window(item.get("window")))
        if not metrics:
            raise MetricError(f"unable to get metrics for resource {resource}: no metrics returned from resource "
                              "metrics API")
        return metrics

    async def pods(self, ns: str, selector: str, metric: str, metric_selector: str) -> dict[str, PodMetric]:
        path = f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/{quote(metric, safe='')}"
        try:
            out = await self.client.request("GET", path, params={"labelSelector": selector,
                                                                 "metricLabelSelector": metric_selector or None})
        except ApiError as exc:
            raise MetricError(f"unable to get metric {metric}: {exc}") from exc
        metrics = {i["describedObject"]["name"]: PodMetric(milli(i["value"]),
                                                           parse_time(i.get("timestamp")) or datetime.now(UTC),
                                                           float(i.get("windowSeconds") or 0))
                   for i in out.get("items") or []}
        if not metrics:
            raise MetricError(f"unable to get metric {metric}: no metrics returned from custom metrics API")
        return metrics

    async def object(self, ns: str, ref: Obj, metric: str, metric_selector: str) -> float:
        res = by_kind(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
        if res is None:
            raise MetricError(f"unable to get metric {metric}: unknown object kind {ref.get('kind')}")
        path = (f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/{res.plural}"
                f"/{quote(str(ref.get('name')), safe='')}/{quote(metric, safe='')}")
        try:
            out = await self.client.request("GET", path, params={"metricLabelSelector": metric_selector or None})
        except ApiError as exc:
            raise MetricError(f"unable to get metric {metric}: {res.kind}/{ref.get('name')}: {exc}") from exc
        items = out.get("items") or []
        if not items:
            raise MetricError(f"unable to get metric {metric}: no value for {res.kind}/{ref.get('name')}")
        return milli(items[0]["value"])
