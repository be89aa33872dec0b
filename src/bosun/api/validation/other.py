"""HorizontalPodAutoscaler (v2), Lease and PriorityClass (Ingress: :mod:`.ingress`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bosun.api.errors import forbidden, invalid, not_supported, required
from bosun.api.quantity import QUANTITY_ERROR, parse_quantity
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import (
    check_name,
    dns1123_subdomain,
    validate_label_selector,
    validate_object_meta,
)

METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
HIGHEST_USER_PRIORITY = 1_000_000_000


def _metric_target(c: Checker, target: dict[str, Any], path: str) -> None:
    ttype = c.text(target, "type", child(path, "type"))
    if ttype not in ("Utilization", "Value", "AverageValue"):
        c.add(not_supported(child(path, "type"), ttype or "", ["AverageValue", "Utilization", "Value"]))
    util = c.integer(target, "averageUtilization", child(path, "averageUtilization"))
    values: dict[str, Decimal] = {}
    for f in ("value", "averageValue"):
        raw = target.get(f)
        if raw is None:
            continue
        try:
            values[f] = parse_quantity(raw)
        except ValueError:
            c.add(invalid(child(path, f), str(raw), QUANTITY_ERROR))
    if ttype == "Utilization" and (util is None or util <= 0):
        c.add(invalid(child(path, "averageUtilization"), util or 0, "must be greater than 0"))
    if ttype == "Value" and values.get("value", Decimal(0)) <= 0:
        c.add(invalid(child(path, "value"), str(target.get("value", 0)), "must be positive"))
    if ttype == "AverageValue" and values.get("averageValue", Decimal(0)) <= 0:
        c.add(invalid(child(path, "averageValue"), str(target.get("averageValue", 0)), "must be positive"))


_SOURCE_FIELD = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
                 "Object": "object", "External": "external"}


def validate_hpa(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    ref = c.obj(spec, "scaleTargetRef", "spec.scaleTargetRef") or {}
    for f in ("kind", "name"):
        v = c.text(ref, f, f"spec.scaleTargetRef.{f}")
        if not v:
            c.add(required(f"spec.scaleTargetRef.{f}"))
        elif f == "name":
            check_name(c, v, "spec.scaleTargetRef.name", dns1123_subdomain)
    lo = c.integer(spec, "minReplicas", "spec.minReplicas")
    if lo is not None and lo < 1:
        c.add(invalid("spec.minReplicas", lo, "must be greater than or equal to 1"))
    hi = c.integer(spec, "maxReplicas", "spec.maxReplicas")
    if hi is None:
        if spec.get("maxReplicas") is None:
            c.add(required("spec.maxReplicas"))
    elif hi < 1:
        c.add(invalid("spec.maxReplicas", hi, "must be greater than 0"))
    elif lo is not None and hi < lo:
        c.add(invalid("spec.maxReplicas", hi, "must be greater than or equal to `minReplicas`"))
    for i, m in c.objects(spec, "metrics", "spec.metrics"):
        p = index("spec.metrics", i)
        mtype = c.text(m, "type", child(p, "type"))
        if mtype not in METRIC_TYPES:
            c.add(not_supported(child(p, "type"), mtype or "", METRIC_TYPES))
            continue
        field = _SOURCE_FIELD[mtype]
        for other in _SOURCE_FIELD.values():
            if other != field and m.get(other) is not None:
                c.add(forbidden(child(p, other), "must populate the given metric source only"))
        src = c.obj(m, field, child(p, field))
        if src is None:
            c.add(required(child(p, field), "must populate information for the given metric source"))
            continue
        sp = child(p, field)
        if field in ("resource", "containerResource") and not c.text(src, "name", child(sp, "name")):
            c.add(required(child(sp, "name")))
        if field == "containerResource" and not c.text(src, "container", child(sp, "container")):
            c.add(required(child(sp, "container")))
        if field in ("pods", "object", "external"):
            metric = c.obj(src, "metric", child(sp, "metric")) or {}
            if not c.text(metric, "name", child(sp, "metric.name")):
                c.add(required(child(sp, "metric.name")))
            sel = c.obj(metric, "selector", child(sp, "metric.selector"))
            if sel is not None:
                validate_label_selector(c, sel, child(sp, "metric.selector"))
        target = c.obj(src, "target", child(sp, "target"))
        if target is None:
            c.add(required(child(sp, "target")))
        else:
            _metric_target(c, target, child(sp, "target"))
    behavior = c.obj(spec, "behavior", "spec.behavior") or {}
    for direction in ("scaleUp", "scaleDown"):
        rules = c.obj(behavior, direction, f"spec.behavior.{direction}")
        if rules is None:
            continue
        bp = f"spec.behavior.{direction}"
        c.in_range(rules, "stabilizationWindowSeconds", child(bp, "stabilizationWindowSeconds"), 0, 3600)
        select = c.text(rules, "selectPolicy", child(bp, "selectPolicy"))
        if select is not None and select not in ("Max", "Min", "Disabled"):
            c.add(not_supported(child(bp, "selectPolicy"), select, ["Disabled", "Max", "Min"]))
        for j, pol in c.objects(rules, "policies", child(bp, "policies")):
            pp = index(child(bp, "policies"), j)
            ptype = c.text(pol, "type", child(pp, "type"))
            if ptype not in ("Pods", "Percent"):
                c.add(not_supported(child(pp, "type"), ptype or "", ["Percent", "Pods"]))
            c.positive(pol, "value", child(pp, "value"))
            c.in_range(pol, "periodSeconds", child(pp, "periodSeconds"), 1, 1800)


def validate_lease(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    c.text(spec, "holderIdentity", "spec.holderIdentity")
    c.positive(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds")
    c.non_negative(spec, "leaseTransitions", "spec.leaseTransitions")
    for f in ("acquireTime", "renewTime"):
        c.text(spec, f, f"spec.{f}")


def validate_priority_class(c: Checker, obj: dict[str, Any]) -> None:
    meta = validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    name = meta.get("name")
    value = c.integer(obj, "value", "value")
    if value is None and obj.get("value") is None:
        c.add(required("value"))
    system = isinstance(name, str) and name.startswith("system-")
    if system and name not in ("system-cluster-critical", "system-node-critical"):
        c.add(forbidden("metadata.name", "priority class names with 'system-' prefix are reserved"))
    if value is not None and value > HIGHEST_USER_PRIORITY and not system:
        c.add(forbidden("value",
                        f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"))
    c.boolean(obj, "globalDefault", "globalDefault")
    pp = c.text(obj, "preemptionPolicy", "preemptionPolicy")
    if pp is not None and pp not in ("PreemptLowerPriority", "Never"):
        c.add(not_supported("preemptionPolicy", pp, ["Never", "PreemptLowerPriority"]))
