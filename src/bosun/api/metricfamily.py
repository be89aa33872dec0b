"""One Prometheus metric family as plain dict arithmetic, for the server's hot paths.

prometheus-client takes a lock and walks its label machinery on every inc/observe, four or
five times per API request; the families here are only ever touched from the server's event
loop, so a dict update is enough, and the exposition format is built when /metrics is
scraped. ``kind`` is ``counter``, ``gauge``, ``histogram`` or ``unknown`` (exposed as
``untyped``: a counter whose upstream name does not end in ``_total``, such as
``apiserver_admission_webhook_rejection_count``, which prometheus-client would rename).
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class Family:
    """Label values -> number (counter, gauge, unknown) or per-bucket counts plus sum (histogram)."""

    __slots__ = ("buckets", "doc", "kind", "labels", "name", "values")

    def __init__(self, kind: str, name: str, doc: str, labels: list[str],
                 buckets: tuple[float, ...] = ()) -> None:
        self.kind = kind
        self.name = name
        self.doc = doc
        self.labels = labels
        self.buckets = buckets
        self.values: dict[tuple[str, ...], Any] = {}

    def add(self, key: tuple[str, ...], amount: float = 1) -> None:
        values = self.values
        values[key] = values.get(key, 0) + amount

    def observe(self, key: tuple[str, ...], value: float) -> None:
        counts = self.values.get(key)
        if counts is None:
            counts = self.values[key] = [0] * (len(self.buckets) + 1) + [0.0]
        counts[bisect_left(self.buckets, value)] += 1  # le: a value equal to a bound counts in it
        counts[-1] += value

    def family(self) -> Metric:
        if self.kind == "histogram":
            h = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
            bounds = [*(_le(b) for b in self.buckets), "+Inf"]
            for key, counts in list(self.values.items()):
                cumulative = list(itertools.accumulate(counts[:-1]))
                h.add_metric(list(key), list(zip(bounds, cumulative, strict=True)), counts[-1])
            return h
        if self.kind == "unknown":
            untyped = Metric(self.name, self.doc, "unknown")
            for key, value in list(self.values.items()):
                untyped.add_sample(self.name, dict(zip(self.labels, key, strict=True)), value)
            return untyped
        fam: Metric = (CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily)(
            self.name, self.doc, labels=self.labels)
        for key, value in list(self.values.items()):
            fam.add_metric(list(key), value)  # type: ignore[attr-defined]
        return fam


def _le(bound: float) -> str:
    return floatToGoString(bound)
