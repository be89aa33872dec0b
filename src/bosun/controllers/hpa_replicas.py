"""How many replicas a metric asks for: Kubernetes' HPA replica calculator
(pkg/controller/podautoscaler/replica_calculator.go), as pure functions.

The rules kept from upstream:
- the usage ratio (current / target) changes nothing while within ``tolerance`` (10%) of 1;
- pods being deleted, failed or succeeded are ignored; pending pods, and for CPU pods still
  starting (within ``cpu_initialization_period`` of their start, Ready for less than the
  metric's window, or not yet Ready soon after start) count as unready; pods with no metric
  are "missing";
- when scaling down, missing pods are assumed at 100% of their target (of their request
  for utilization); when scaling up, missing and unready pods are assumed at 0. The
  recomputed ratio only takes effect if it keeps the direction; otherwise nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bosun.api.quantity import parse_quantity
from bosun.controllers._common import condition, is_terminating, parse_time

Obj = dict[str, Any]
TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0


class MetricError(Exception):
    """The metric cannot give a replica count (the HPA's ScalingActive condition says why)."""


@dataclass(frozen=True, slots=True)
class PodMetric:
    value: float  # milli-units for resources (millicores, milli-bytes as upstream), raw for others
    timestamp: datetime
    window: float  # seconds


@dataclass(frozen=True, slots=True)
class Timing:
    now: datetime
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: float = INITIAL_READINESS_DELAY
    tolerance: float = TOLERANCE


@dataclass(frozen=True, slots=True)
class Groups:
    ready: int
    unready: set[str]
    missing: set[str]
    ignored: set[str]


def group_pods(pods: list[Obj], metrics: dict[str, PodMetric], resource: str, timing: Timing) -> Groups:
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        if is_terminating(pod) or phase in ("Failed", "Succeeded"):
            ignored.add(name)
            continue
        if phase == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu" and _cpu_unready(pod, metric, timing):
            unready.add(name)
            continue
        ready += 1
    return Groups(ready, unready, missing, ignored)


def _cpu_unready(pod: Obj, metric: PodMetric, timing: Timing) -> bool:
    cond = condition(pod, "Ready")
    start = parse_time((pod.get("status") or {}).get("startTime"))
    if cond is None or start is None:
        return True
    changed = parse_time(cond.get("lastTransitionTime")) or start
    if start + timedelta(seconds=timing.cpu_initialization_period) > timing.now:
        # Still possibly initialising: unready if not Ready, or Ready for less than the metric's window.
        return bool(cond.get("status") == "False" or metric.timestamp < changed + timedelta(seconds=metric.window))
    return bool(cond.get("status") == "False"
                and start + timedelta(seconds=timing.initial_readiness_delay) > changed)


def pod_requests(pods: list[Obj], resource: str, container: str = "") -> dict[str, float]:
    """Each pod's request for ``resource`` in milli-units; a container without one is an error."""
    out: dict[str, float] = {}
    for pod in pods:
        total = 0.0
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container and c.get("name") != container:
                continue
            req = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if req is None:
                raise MetricError(f"missing request for {resource} in container {c.get('name')} of Pod "
                                  f"{pod['metadata']['name']}")
            total += float(parse_quantity(req)) * 1000
        out[pod["metadata"]["name"]] = total
    return out


def utilization_ratio(metrics: dict[str, PodMetric], requests: dict[str, float],
                      target: int) -> tuple[float, int, float]:
    """(usage ratio, utilization %, average raw value in milli-units) over pods with both."""
    used = req = 0.0
    n = 0
    for name, m in metrics.items():
        r = requests.get(name)
        if r is None:
            continue
        used += m.value
        req += r
        n += 1
    if req == 0:
        raise MetricError("no metrics returned matched known pods")
    util = int(used * 100 / req)
    return util / target, util, used / n


def usage_ratio(metrics: dict[str, PodMetric], target: float) -> tuple[float, float]:
    avg = sum(m.value for m in metrics.values()) / len(metrics)
    return avg / target, avg


def _counted(pods: list[Obj], metrics: dict[str, PodMetric], resource: str,
             timing: Timing) -> tuple[Groups, dict[str, PodMetric]]:
    """The pods' groups and the metrics of the pods that count at first (neither ignored nor
    unready); no metric, no pod or nothing left to count gives no replica count."""
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, metrics, resource, timing)
    counted = {k: v for k, v in metrics.items() if k not in groups.ignored and k not in groups.unready}
    if not counted:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    return groups, counted


def _assume(metrics: dict[str, PodMetric], groups: Groups, missing: Callable[[str], float],
            with_unready: bool, now: datetime) -> None:
    """Add the values the second pass assumes: ``missing(name)`` for a pod with no metric,
    and 0 for an unready pod when scaling up."""
    for name in groups.missing:
        metrics[name] = PodMetric(missing(name), now, 0)
    if with_unready:
        for name in groups.unready:
            metrics[name] = PodMetric(0.0, now, 0)


def _finish(current: int, ratio: float, new_ratio: float, count: int, timing: Timing) -> int:
    if (abs(1.0 - new_ratio) <= timing.tolerance or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)):
        return current
    wanted = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and wanted > current) or (new_ratio > 1.0 and wanted < current):
        return current
    return wanted


def resource_replicas(current: int, target_utilization: int, resource: str, pods: list[Obj],
                      metrics: dict[str, PodMetric], timing: Timing,
                      container: str = "") -> tuple[int, int, float]:
    """(replicas, utilization %, average value in milli-units) for a Utilization target."""
    groups, metrics = _counted(pods, metrics, resource, timing)
    requests = pod_requests(pods, resource, container)
    ratio, util, raw = utilization_ratio(metrics, requests, target_utilization)
    with_unready = bool(groups.unready) and ratio > 1.0
    if not with_unready and not groups.missing:
        if abs(1.0 - ratio) <= timing.tolerance:
            return current, util, raw
        return math.ceil(ratio * groups.ready), util, raw
    fallback = max(100, target_utilization) if ratio < 1.0 else 0
    _assume(metrics, groups, lambda name: requests.get(name, 0.0) * fallback / 100, with_unready, timing.now)
    new_ratio, _, _ = utilization_ratio(metrics, requests, target_utilization)
    return _finish(current, ratio, new_ratio, len(metrics), timing), util, raw


def plain_replicas(current: int, target: float, pods: list[Obj], metrics: dict[str, PodMetric],
                   timing: Timing, resource: str = "") -> tuple[int, float]:
    """(replicas, average value) for an AverageValue target over pods (Pods metrics, or a
    resource's AverageValue)."""
    groups, metrics = _counted(pods, metrics, resource, timing)
    ratio, avg = usage_ratio(metrics, target)
    with_unready = bool(groups.unready) and ratio > 1.0
    if not with_unready and not groups.missing:
        if abs(1.0 - ratio) <= timing.tolerance:
            return current, avg
        return math.ceil(ratio * groups.ready), avg
    _assume(metrics, groups, lambda _name: target if ratio < 1.0 else 0.0, with_unready, timing.now)
    new_ratio, _ = usage_ratio(metrics, target)
    return _finish(current, ratio, new_ratio, len(metrics), timing), avg


def ready_count(pods: list[Obj]) -> int:
    return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running"
               and not is_terminating(p) and (condition(p, "Ready") or {}).get("status") == "True")


def object_replicas(current: int, usage: float, target: float, pods: list[Obj], timing: Timing) -> int:
    """An Object metric with a Value target: the ratio scales the ready pods."""
    ratio = usage / target
    if current == 0:
        return math.ceil(ratio)
    if abs(1.0 - ratio) <= timing.tolerance:
        return current
    return math.ceil(ratio * ready_count(pods))


def object_average_replicas(status_replicas: int, usage: float, target_average: float,
                            timing: Timing) -> tuple[int, float]:
    """An Object (or External) metric with an AverageValue target: usage shared by replicas."""
    replicas = status_replicas
    if status_replicas > 0:
        ratio = usage / (target_average * status_replicas)
        if abs(1.0 - ratio) > timing.tolerance:
            replicas = math.ceil(usage / target_average)
        return replicas, usage / status_replicas
    return math.ceil(usage / target_average), usage
