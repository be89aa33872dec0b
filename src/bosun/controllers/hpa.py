"""The HorizontalPodAutoscaler controller (Kubernetes' podautoscaler, autoscaling/v2).

Every HPA is reconciled when it changes and then every ``hpa_sync_period`` seconds (15 s, as
upstream): read the target's scale subresource (any kind that has one), ask each metric for
a replica count (:mod:`bosun.controllers.hpa_replicas`, metrics through the API:
:mod:`bosun.controllers.hpa_metrics`), take the largest, normalize it (stabilization
windows, policies, min/max: :mod:`bosun.controllers.hpa_behavior`), write the scale, and
say what happened in the status (current metrics, AbleToScale / ScalingActive /
ScalingLimited) and in events. A target that is missing or cannot be scaled, or a metric
that cannot be read, is a condition and an event and the next periodic look, never a
retry storm.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bosun.api.quantity import format_quantity
from bosun.api.selectors import SelectorError, label_selector_text, parse_label_selector
from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import Controller, now, resource, rfc3339
from bosun.controllers.hpa_behavior import Normalizer
from bosun.controllers.hpa_metrics import MetricsClient, milli
from bosun.controllers.hpa_replicas import (
    MetricError,
    Timing,
    object_average_replicas,
    object_replicas,
    plain_replicas,
    resource_replicas,
)
from bosun.controllers.hpa_targets import ScaleTargets, TargetError

log = logging.getLogger(__name__)
Obj = dict[str, Any]

HPAS = resource("autoscaling", "v2", "horizontalpodautoscalers")
PODS = resource("", "v1", "pods")
_FAILED_REASON = {"Resource": "FailedGetResourceMetric", "ContainerResource": "FailedGetContainerResourceMetric",
                  "Pods": "FailedGetPodsMetric", "Object": "FailedGetObjectMetric",
                  "External": "FailedGetExternalMetric"}


def quantity(milli_value: float) -> str:
    return format_quantity(Decimal(round(milli_value)) / 1000)


def set_condition(status: Obj, type_: str, value: str, reason: str, message: str) -> None:
    """An HPA condition (its type has no lastUpdateTime); the transition time moves only
    when the status does."""
    conds = [dict(c) for c in status.get("conditions") or []]
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") != value:
                c["lastTransitionTime"] = rfc3339()
            c.update(status=value, reason=reason, message=message)
            break
    else:
        conds.append({"type": type_, "status": value, "lastTransitionTime": rfc3339(), "reason": reason,
                      "message": message})
    status["conditions"] = conds


@dataclass
class Proposal:
    replicas: int = -1
    metric: str = ""
    statuses: list[Obj] = field(default_factory=list)
    error: tuple[str, str] | None = None  # (reason, message) of the first metric that failed
    failures: int = 0


class HPAController(Controller):
    name = "horizontal-pod-autoscaler"
    workers = 2

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        opts = ctx.options
        self.sync_period = opts.hpa_sync_period
        self.normalizer = Normalizer(opts.hpa_downscale_stabilization)
        self.targets = ScaleTargets(self.client)
        self.tolerance = opts.hpa_tolerance
        self.cpu_init = opts.hpa_cpu_initialization_period
        self.readiness_delay = opts.hpa_initial_readiness_delay
        self.metrics = MetricsClient(self.client)
        self.hpas = ctx.informers.get(HPAS)
        self.pods = ctx.informers.get(PODS)
        self.hpas.add_handler(self.enqueue, lambda old, new: self._changed(old, new), self._deleted)

    def _changed(self, old: Obj, new: Obj) -> None:
        if old.get("spec") != new.get("spec"):
            self.enqueue(new)  # a status write of our own waits for the next period

    def _deleted(self, obj: Obj) -> None:
        m = obj.get("metadata") or {}
        self.normalizer.forget(f"{m.get('namespace')}/{m.get('name')}")

    def timing(self) -> Timing:
        return Timing(now(), self.cpu_init, self.readiness_delay, self.tolerance)

    async def reconcile(self, key: str) -> None:
        hpa = self.hpas.get_by_key(key)
        if hpa is None:
            self.normalizer.forget(key)
            return
        try:
            await self._reconcile(key, hpa)
        finally:
            self.queue.add_after(key, self.sync_period)

    # -- one pass -----------------------------------------------------------------------------

    async def _reconcile(self, key: str, hpa: Obj) -> None:
        spec = hpa.get("spec") or {}
        ns = hpa["metadata"]["namespace"]
        status = copy.deepcopy(hpa.get("status") or {})
        ref = spec.get("scaleTargetRef") or {}
        try:
            target = await self.targets.resolve(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
            scale = await self.client.get(target, str(ref.get("name")), ns, subresource="scale")
        except TargetError as exc:
            await self._scale_failed(hpa, status, str(exc))
            return
        except ApiError as exc:
            await self._scale_failed(hpa, status, str(exc))
            return
        set_condition(status, "AbleToScale", "True", "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale")
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        self.normalizer.record_initial(key, current)
        lo, hi = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        statuses: list[Obj] = list(status.get("currentMetrics") or [])
        reason = ""
        if current == 0 and lo != 0:
            desired = 0
            set_condition(status, "ScalingActive", "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero")
        elif current > hi:
            desired, reason = hi, "Current number of replicas above Spec.MaxReplicas"
        elif current < lo:
            desired, reason = lo, "Current number of replicas below Spec.MinReplicas"
        else:
            proposal = await self._propose(hpa, scale, status)
            statuses = proposal.statuses
            if proposal.replicas == -1:
                await self._write_status(hpa, status, current, current, statuses, rescaled=False)
                return
            desired = proposal.replicas
            if desired > current:
                reason = f"{proposal.metric} above target"
            elif desired < current:
                reason = "All metrics below target"
            desired, able, limited = self.normalizer.normalize(key, spec, current, desired)
            set_condition(status, "AbleToScale", "True", able.reason, able.message)
            set_condition(status, "ScalingLimited", "True" if limited.replicas != able.replicas else "False",
                          limited.reason, limited.message)
        rescaled = desired != current
        if rescaled:
            try:
                await self.client.patch(target, str(ref.get("name")), {"spec": {"replicas": desired}}, ns,
                                        subresource="scale")
            except ApiError as exc:
                set_condition(status, "AbleToScale", "False", "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: {exc}")
                self.recorder.event(hpa, "Warning", "FailedRescale",
                                    f"New size: {desired}; reason: {reason}; error: {exc}")
                await self._write_status(hpa, status, current, current, statuses, rescaled=False)
                return
            set_condition(status, "AbleToScale", "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to {desired}")
            self.recorder.event(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            self.normalizer.record_scale(key, spec, current, desired)
            log.info("hpa %s: scaled %s/%s from %d to %d (%s)", key, ref.get("kind"), ref.get("name"), current,
                     desired, reason)
        await self._write_status(hpa, status, current, desired, statuses, rescaled=rescaled)

    async def _scale_failed(self, hpa: Obj, status: Obj, why: str) -> None:
        message = f"the HPA controller was unable to get the target's current scale: {why}"
        set_condition(status, "AbleToScale", "False", "FailedGetScale", message)
        self.recorder.event(hpa, "Warning", "FailedGetScale", why)
        await self._write_status(hpa, status, int(status.get("currentReplicas") or 0),
                                 int(status.get("desiredReplicas") or 0), list(status.get("currentMetrics") or []),
                                 rescaled=False)

    async def _write_status(self, hpa: Obj, status: Obj, current: int, desired: int, statuses: list[Obj],
                            *, rescaled: bool) -> None:
        status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        status["observedGeneration"] = hpa["metadata"].get("generation", 0)
        if statuses:
            status["currentMetrics"] = statuses
        else:
            status.pop("currentMetrics", None)
        if rescaled:
            status["lastScaleTime"] = rfc3339()
        if status == (hpa.get("status") or {}):
            return
        try:
            await self.client.update(HPAS, dict(hpa, status=status), subresource="status")
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    # -- metrics ------------------------------------------------------------------------------

    async def _propose(self, hpa: Obj, scale: Obj, status: Obj) -> Proposal:
        spec = hpa.get("spec") or {}
        ns = hpa["metadata"]["namespace"]
        selector = str((scale.get("status") or {}).get("selector") or "")
        out = Proposal()
        if not selector:
            set_condition(status, "ScalingActive", "False", "InvalidSelector",
                          "the HPA target's scale is missing a selector")
            self.recorder.event(hpa, "Warning", "SelectorRequired", "selector is required")
            return out
        try:
            sel = parse_label_selector(selector)
        except SelectorError as exc:
            set_condition(status, "ScalingActive", "False", "InvalidSelector",
                          f"the HPA target's scale has an invalid selector: {exc}")
            self.recorder.event(hpa, "Warning", "InvalidSelector", str(exc))
            return out
        pods = [p for p in self.pods.list(ns) if sel.matches(p["metadata"].get("labels") or {})]
        spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        status_replicas = int((scale.get("status") or {}).get("replicas") or 0)
        metrics = spec.get("metrics") or []
        best = 0
        for m in metrics:
            mtype = str(m.get("type") or "")
            try:
                replicas, name, st = await self._one(m, ns, selector, pods, spec_replicas, status_replicas)
            except MetricError as exc:
                out.failures += 1
                out.statuses.append({"type": mtype})
                if out.error is None:
                    out.error = (_FAILED_REASON.get(mtype, "FailedGetMetric"), str(exc))
                continue
            out.statuses.append(st)
            if best == 0 or replicas > best:
                best, out.metric = replicas, name
        out.statuses = [s for s in out.statuses if len(s) > 1]
        if out.error is not None and (out.failures >= len(metrics) or best < spec_replicas):
            reason, message = out.error
            set_condition(status, "ScalingActive", "False", reason,
                          f"the HPA was unable to compute the replica count: {message}")
            self.recorder.event(hpa, "Warning", reason, message)
            self.recorder.event(hpa, "Warning", "FailedComputeMetricsReplicas",
                                f"invalid metrics ({out.failures} invalid out of {len(metrics)}), first error is: "
                                f"failed to get {message}")
            return out
        set_condition(status, "ScalingActive", "True", "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from {out.metric}")
        out.replicas = best
        return out

    async def _one(self, m: Obj, ns: str, selector: str, pods: list[Obj], spec_replicas: int,
                   status_replicas: int) -> tuple[int, str, Obj]:
        mtype = m.get("type")
        timing = self.timing()
        if mtype in ("Resource", "ContainerResource"):
            src = m.get("resource") if mtype == "Resource" else m.get("containerResource")
            src = src or {}
            name, container = str(src.get("name")), str(src.get("container") or "")
            target = src.get("target") or {}
            usage = await self.metrics.resource(ns, selector, name, container)
            field_name = "resource" if mtype == "Resource" else "containerResource"
            ident = {"name": name, **({"container": container} if container else {})}
            if target.get("type") == "Utilization" or target.get("averageUtilization") is not None:
                replicas, util, raw = resource_replicas(spec_replicas, int(target.get("averageUtilization") or 0),
                                                        name, pods, usage, timing, container)
                return replicas, f"{name} resource utilization (percentage of request)", {
                    "type": mtype, field_name: {**ident, "current": {"averageUtilization": util,
                                                                     "averageValue": quantity(raw)}}}
            replicas, avg = plain_replicas(spec_replicas, milli(target.get("averageValue") or 0), pods, usage,
                                           timing, name)
            return replicas, f"{name} resource", {
                "type": mtype, field_name: {**ident, "current": {"averageValue": quantity(avg)}}}
        if mtype == "Pods":
            src = m.get("pods") or {}
            metric = src.get("metric") or {}
            target = src.get("target") or {}
            values = await self.metrics.pods(ns, selector, str(metric.get("name")),
                                             label_selector_text(metric.get("selector")))
            replicas, avg = plain_replicas(spec_replicas, milli(target.get("averageValue") or 0), pods, values,
                                           timing)
            return replicas, f"pods metric {metric.get('name')}", {
                "type": "Pods", "pods": {"metric": metric, "current": {"averageValue": quantity(avg)}}}
        if mtype == "Object":
            src = m.get("object") or {}
            metric = src.get("metric") or {}
            target = src.get("target") or {}
            described = src.get("describedObject") or {}
            value = await self.metrics.object(ns, described, str(metric.get("name")),
                                              label_selector_text(metric.get("selector")))
            name = f"{str(described.get('kind', '')).lower()} metric {metric.get('name')}"
            if target.get("type") == "AverageValue":
                replicas, avg = object_average_replicas(status_replicas, value, milli(target.get("averageValue")),
                                                        timing)
                current: Obj = {"averageValue": quantity(avg)}
            else:
                replicas = object_replicas(spec_replicas, value, milli(target.get("value") or 0), pods, timing)
                current = {"value": quantity(value)}
            return replicas, name, {"type": "Object", "object": {"describedObject": described, "metric": metric,
                                                                  "current": current}}
        raise MetricError(f"{mtype} metrics are not served by this cluster (no external metrics API)")


async def run(ctx: ComponentContext) -> None:
    await HPAController(ctx).run()
