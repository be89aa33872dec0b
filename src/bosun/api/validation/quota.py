"""ResourceQuota, LimitRange, RuntimeClass and PodTemplate: the policy and template kinds that
manifests of the example collections carry next to their workloads. Kubernetes refuses what
these checks refuse, with the same field paths; enforcing quotas and limit ranges is admission's
job, not validation's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bosun.api.errors import FieldError, invalid, not_supported, required
from bosun.api.quantity import QUANTITY_ERROR, parse_quantity
from bosun.api.validation.fields import Checker, child, index, key
from bosun.api.validation.meta import (
    check_name,
    dns1123_label,
    dns1123_subdomain,
    qualified_name,
    validate_object_meta,
)
from bosun.api.validation.pod import validate_pod_template, validate_tolerations

QUOTA_SCOPES = ["BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating", "PriorityClass",
                "Terminating", "VolumeAttributesClass"]
SCOPE_OPERATORS = ["DoesNotExist", "Exists", "In", "NotIn"]
LIMIT_TYPES = ["Container", "PersistentVolumeClaim", "Pod"]


def resource_list(c: Checker, parent: Any, name: str, path: str) -> dict[str, Decimal]:
    """A ResourceList of quota or limit values: qualified names, non-negative quantities."""
    out: dict[str, Decimal] = {}
    for rname, raw in (c.obj(parent, name, path) or {}).items():
        p = key(path, rname)
        for msg in qualified_name(rname):
            c.add(invalid(p, rname, msg))
        try:
            q = parse_quantity(raw)
        except (ValueError, TypeError):
            c.add(invalid(p, raw if isinstance(raw, str | int | float) else str(raw), QUANTITY_ERROR))
            continue
        if q < 0:
            c.add(invalid(p, str(raw), "must be greater than or equal to 0"))
        out[rname] = q
    return out


def validate_resource_quota(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    resource_list(c, spec, "hard", "spec.hard")
    for i, scope in enumerate(c.strings(spec, "scopes", "spec.scopes")):
        if scope not in QUOTA_SCOPES:
            c.add(not_supported(index("spec.scopes", i), scope, QUOTA_SCOPES))
    selector = c.obj(spec, "scopeSelector", "spec.scopeSelector") or {}
    for i, expr in c.objects(selector, "matchExpressions", "spec.scopeSelector.matchExpressions"):
        p = index("spec.scopeSelector.matchExpressions", i)
        scope = c.text(expr, "scopeName", child(p, "scopeName"))
        if scope not in QUOTA_SCOPES:
            c.add(not_supported(child(p, "scopeName"), scope or "", QUOTA_SCOPES))
        op = c.text(expr, "operator", child(p, "operator"))
        if op not in SCOPE_OPERATORS:
            c.add(not_supported(child(p, "operator"), op or "", SCOPE_OPERATORS))
        values = c.strings(expr, "values", child(p, "values"))
        if op in ("In", "NotIn") and not values:
            c.add(invalid(child(p, "values"), values, "must be at least one value when `operator` is 'In' or 'NotIn'"))
        if op in ("Exists", "DoesNotExist") and values:
            c.add(invalid(child(p, "values"), values,
                          "must be no value when `operator` is 'Exist' or 'DoesNotExist'"))


def validate_limit_range(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    if not isinstance(spec.get("limits"), list):
        c.add(required("spec.limits"))
    for i, item in c.objects(spec, "limits", "spec.limits"):
        p = index("spec.limits", i)
        kind = c.text(item, "type", child(p, "type"))
        if kind not in LIMIT_TYPES:
            c.add(not_supported(child(p, "type"), kind or "", LIMIT_TYPES))
        lists = {f: resource_list(c, item, f, child(p, f))
                 for f in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")}
        if kind == "Pod":
            for f in ("default", "defaultRequest"):
                if lists[f]:
                    c.add(invalid(child(p, f), item[f], "may not be specified when `type` is 'Pod'"))
        for rname, lo in lists["min"].items():
            hi = lists["max"].get(rname)
            if hi is not None and lo > hi:
                c.add(invalid(key(child(p, "min"), rname), str(item["min"][rname]),
                              f"min value {item['min'][rname]} is greater than max value {item['max'][rname]}"))
        _check_defaults(c, p, item, lists)
        for rname, ratio in lists["maxLimitRequestRatio"].items():
            if ratio < 1:
                c.add(invalid(key(child(p, "maxLimitRequestRatio"), rname), str(ratio),
                              "ratio must be greater than or equal to 1"))


def _check_defaults(c: Checker, p: str, item: dict[str, Any], lists: dict[str, dict[str, Decimal]]) -> None:
    """A default limit or request outside min..max, or a default request over the default
    limit, would make every defaulted pod refused: upstream refuses the LimitRange instead."""
    lo, hi, limit = lists["min"], lists["max"], lists["default"]
    text = {f: item.get(f) or {} for f in ("min", "max", "default", "defaultRequest")}
    for field, what in (("default", "default"), ("defaultRequest", "default request")):
        for rname, value in lists[field].items():
            where, shown = key(child(p, field), rname), str(text[field][rname])
            if rname in lo and lo[rname] > value:
                c.add(invalid(where, shown, f"min value {text['min'][rname]} is greater than {what} value {shown}"))
            if rname in hi and value > hi[rname]:
                c.add(invalid(where, shown, f"{what} value {shown} is greater than max value {text['max'][rname]}"))
            if field == "defaultRequest" and rname in limit and value > limit[rname]:
                c.add(invalid(where, shown, f"default request value {shown} is greater than default limit value "
                                            f"{text['default'][rname]}"))


def validate_runtime_class(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    handler = c.text(obj, "handler", "handler")
    if not handler:
        c.add(required("handler"))
    else:
        check_name(c, handler, "handler", dns1123_label)
    overhead = c.obj(obj, "overhead", "overhead") or {}
    resource_list(c, overhead, "podFixed", "overhead.podFixed")
    scheduling = c.obj(obj, "scheduling", "scheduling") or {}
    c.string_map(scheduling, "nodeSelector", "scheduling.nodeSelector")
    validate_tolerations(c, scheduling, "scheduling.tolerations")


def runtime_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """A RuntimeClass's handler names what runs its pods: it never changes (as upstream)."""
    if new.get("handler") != old.get("handler"):
        return [invalid("handler", new.get("handler"), "field is immutable")]
    return []


def validate_pod_template_object(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    validate_pod_template(c, obj, "template")
