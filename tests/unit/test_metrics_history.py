"""The metrics history's bounds and queries, the text formats in and out (scrape parsing,
/federate selectors) and the autoscaling/v1 conversion."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bosun.agent.scrape import ScrapeError, parse, target_url
from bosun.api.conversion.hpa import HPA_V1, METRICS
from bosun.api.errors import APIError
from bosun.monitoring.history import HistoryConfig, MetricsHistory
from bosun.monitoring.ingest import pod_samples
from bosun.monitoring.query_api import federate_text, parse_selector


def aligned_now() -> float:
    """Mid-slot (slots of 10 s), so that the sample times below fall in known slots."""
    return (time.time() // 10) * 10 + 5


def test_ring_keeps_only_the_retention_and_one_value_per_slot() -> None:
    h = MetricsHistory(HistoryConfig(retention=60, resolution=10))
    now = aligned_now()
    for i in range(30):
        h.add("m", {"namespace": "a", "pod": "p"}, i, now - 295 + i * 10)
    h.add("m", {"namespace": "a", "pod": "p"}, 99, now)  # same slot as the last: replaces it
    (series,) = h.query("m", {"namespace": "a"}, start=now - 55, end=now)
    assert [v for _, v in series.points] == [24, 25, 26, 27, 28, 99]
    assert h.memory_bytes() == 6 * 4
    assert h.latest("m", {"pod": "p"})[0][1].value == 99
    # Two silent slots, then a sample: the silence is a gap, not what the ring held before.
    h.add("m", {"namespace": "a", "pod": "p"}, 7, now + 30)
    (series,) = h.query("m", {"namespace": "a"}, start=now - 25, end=now + 30)
    assert [(round(t - now), v) for t, v in series.points] == [(-25, 27), (-15, 28), (-5, 99), (25, 7)]
    assert h.query("m", {"namespace": "b"}) == [] and h.query("other") == []


def test_max_series_bounds_the_history_and_old_series_expire() -> None:
    h = MetricsHistory(HistoryConfig(retention=20, resolution=10, max_series=2))
    now = time.time()
    assert h.add("m", {"pod": "a"}, 1, now - 100) and h.add("m", {"pod": "b"}, 1, now)
    assert not h.add("m", {"pod": "c"}, 1, now)
    assert len(h) == 2 and h.dropped == 1
    assert h.expire(now) == 1 and [r.labels for r in h.query("m")] == [{"pod": "b"}]
    assert h.add("m", {"pod": "c"}, 1, now)


def test_range_query_and_federation() -> None:
    h = MetricsHistory(HistoryConfig(retention=3600, resolution=10))
    now = aligned_now()
    for i in range(6):
        h.add("queue_depth", {"namespace": "a", "pod": "p", "queue": 'jo"bs'}, i, now - 50 + i * 10)
    (series,) = h.query("queue_depth", {"pod": "p"}, start=now - 25, end=now)
    assert [v for _, v in series.points] == [3, 4, 5]
    text = federate_text(h, [parse_selector('{__name__="queue_depth",namespace="a"}')])
    assert text.startswith("# TYPE queue_depth untyped\n")
    assert 'queue_depth{namespace="a",pod="p",queue="jo\\"bs"} 5.0 ' in text
    assert federate_text(h, [("queue_depth", {"namespace": "b"})]) == ""
    with pytest.raises(APIError, match="position"):
        parse_selector('queue_depth{namespace=~"a"}')


def test_scrape_parsing_and_targets() -> None:
    samples = parse('# TYPE q gauge\nq{queue="jobs"} 30\nr_total 2\nnan_metric NaN\n')
    assert [(s.name, s.labels, s.value) for s in samples] == [("q", {"queue": "jobs"}, 30.0), ("r_total", {}, 2.0)]
    with pytest.raises(ScrapeError, match="malformed"):
        parse("q{ this is not prometheus\n")
    pod: dict[str, Any] = {"metadata": {"annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9100",
                                                        "prometheus.io/path": "stats"}},
                           "status": {"phase": "Running", "podIP": "10.0.0.5",
                                      "conditions": [{"type": "Ready", "status": "True"}]}}
    assert target_url(pod) == "http://10.0.0.5:9100/stats"
    pod["status"]["conditions"][0]["status"] = "False"
    assert target_url(pod) is None


def test_custom_samples_get_the_pods_labels_and_cannot_shadow_usage() -> None:
    summary = {"pods": [{"podRef": {"namespace": "a", "name": "p"}, "cpu": {"usageNanoCores": 5e8},
                         "customMetrics": [{"name": "q", "labels": {"namespace": "evil", "x": "1"}, "value": 3},
                                           {"name": "pod_cpu_usage_cores", "labels": {}, "value": 99}]}]}
    samples = list(pod_samples("n1", summary))
    assert ("pod_cpu_usage_cores", {"namespace": "a", "pod": "p", "node": "n1"}, 0.5) in samples
    assert ("q", {"namespace": "a", "pod": "p", "x": "1"}, 3.0) in samples
    assert len(samples) == 2


def test_autoscaling_v1_round_trip_keeps_what_v1_cannot_say() -> None:
    v2 = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "w"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "minReplicas": 1, "maxReplicas": 5,
                   "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                       "type": "Utilization", "averageUtilization": 60}}},
                               {"type": "Pods", "pods": {"metric": {"name": "q"}, "target": {
                                   "type": "AverageValue", "averageValue": "10"}}}],
                   "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}},
          "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
              {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}],
              "conditions": [{"type": "AbleToScale", "status": "True"}]}}
    v1 = HPA_V1.from_storage(v2)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 60 and "metrics" not in v1["spec"]
    assert v1["status"]["currentCPUUtilizationPercentage"] == 40
    assert METRICS in v1["metadata"]["annotations"]
    assert HPA_V1.to_storage(v1) == v2
