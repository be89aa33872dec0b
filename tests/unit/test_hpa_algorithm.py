"""The HPA's arithmetic, upstream's cases: the replica calculator (tolerance, missing and
unready pods) and the normalization (stabilization windows, policies, min/max)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bosun.controllers.hpa_behavior import Normalizer, scale_down_limit, scale_up_limit
from bosun.controllers.hpa_replicas import (
    MetricError,
    PodMetric,
    Timing,
    object_average_replicas,
    object_replicas,
    plain_replicas,
    resource_replicas,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LONG_AGO = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
TIMING = Timing(NOW)


def pod(name: str, *, phase: str = "Running", ready: bool = True, cpu: str = "100m",
        started: str = LONG_AGO) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": phase, "startTime": started,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": started}]}}


def metric(millicores: float) -> PodMetric:
    return PodMetric(millicores, NOW, 15)


def test_utilization_within_tolerance_keeps_replicas() -> None:
    pods = [pod("a"), pod("b")]
    replicas, util, _ = resource_replicas(2, 50, "cpu", pods, {"a": metric(52), "b": metric(54)}, TIMING)
    assert (replicas, util) == (2, 53)


def test_utilization_scales_by_ratio() -> None:
    pods = [pod("a"), pod("b")]
    replicas, util, raw = resource_replicas(2, 50, "cpu", pods, {"a": metric(100), "b": metric(100)}, TIMING)
    assert (replicas, util, raw) == (4, 100, 100)


def test_missing_pods_count_as_full_when_scaling_down() -> None:
    # a and b idle, c has no metric: c is taken at 100% of its request, which damps the scale-down.
    pods = [pod("a"), pod("b"), pod("c")]
    replicas, _, _ = resource_replicas(3, 50, "cpu", pods, {"a": metric(10), "b": metric(10)}, TIMING)
    assert replicas == 3  # (10 + 10 + 100) / 300 = 40% -> ratio 0.8 -> ceil(2.4) = 3


def test_unready_pods_count_as_zero_when_scaling_up() -> None:
    pods = [pod("a"), pod("b", ready=False, started=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))]
    replicas, _, _ = resource_replicas(2, 50, "cpu", pods, {"a": metric(100), "b": metric(100)}, TIMING)
    assert replicas == 2  # a alone asks for 2; b counted at 0 gives ratio 1.0: no change


def test_pending_and_deleted_pods_and_missing_requests() -> None:
    terminating = pod("d")
    terminating["metadata"]["deletionTimestamp"] = LONG_AGO
    pods = [pod("a"), pod("p", phase="Pending"), terminating]
    # d is ignored; a asks for 2 x, but the pending p counts as 0 while scaling up: 50%, no change.
    replicas, util, _ = resource_replicas(3, 50, "cpu", pods, {"a": metric(100), "d": metric(900)}, TIMING)
    assert (replicas, util) == (3, 100)
    bare = pod("x")
    bare["spec"]["containers"][0]["resources"] = {}
    with pytest.raises(MetricError, match="missing request for cpu"):
        resource_replicas(1, 50, "cpu", [bare], {"x": metric(10)}, TIMING)
    with pytest.raises(MetricError, match="did not receive metrics"):
        resource_replicas(1, 50, "cpu", [pod("a")], {}, TIMING)


def test_average_value_and_object_metrics() -> None:
    pods = [pod("a"), pod("b")]
    assert plain_replicas(2, 10_000, pods, {"a": metric(30_000), "b": metric(30_000)}, TIMING) == (6, 30_000)
    assert object_replicas(2, 300, 100, pods, TIMING) == 6
    assert object_replicas(2, 105, 100, pods, TIMING) == 2
    assert object_average_replicas(2, 500, 100, TIMING) == (5, 250)


def test_without_behavior_scale_down_takes_the_highest_recent_recommendation() -> None:
    n = Normalizer(downscale_window=300)
    spec = {"minReplicas": 1, "maxReplicas": 10}
    n.record_initial("k", 5, now=0)
    replicas, able, limited = n.normalize("k", spec, 5, 2, now=10)
    assert replicas == 5 and able.reason == "ScaleDownStabilized"
    replicas, _, _ = n.normalize("k", spec, 5, 2, now=400)
    assert replicas == 2
    replicas, _, limited = n.normalize("k", spec, 2, 50, now=401)
    assert replicas == 4 and limited.reason == "ScaleUpLimit"  # max(2 x 2, 4)


def test_behavior_windows_and_policies() -> None:
    n = Normalizer()
    spec = {"minReplicas": 1, "maxReplicas": 20, "behavior": {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 5, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}}
    replicas, _, limited = n.normalize("k", spec, 4, 12, now=0)
    assert replicas == 6 and limited.reason == "ScaleUpLimit"
    n.record_scale("k", spec, 4, 6, now=0)
    replicas, _, _ = n.normalize("k", spec, 6, 12, now=10)
    assert replicas == 6  # the period's two pods are spent
    replicas, able, _ = n.normalize("k", spec, 6, 1, now=12)
    assert replicas == 6 and able.reason == "ScaleDownStabilized"
    replicas, _, limited = n.normalize("k", spec, 6, 1, now=30)
    assert replicas == 3 and limited.reason == "ScaleDownLimit"  # 50% of 6 per minute


def test_policy_limits() -> None:
    up = {"selectPolicy": "Min", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                              {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert scale_up_limit(2, [], up, 0) == 4
    assert scale_up_limit(2, [], dict(up, selectPolicy="Max"), 0) == 6
    assert scale_up_limit(2, [], dict(up, selectPolicy="Disabled"), 0) == 2
    down = {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}
    assert scale_down_limit(5, [(0.0, 1)], down, 30) == 5  # one removed within the period already
    assert scale_down_limit(5, [(0.0, 1)], down, 61) == 4
