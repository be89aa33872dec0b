"""policy/v1: PodDisruptionBudget, with upstream's messages."""

from __future__ import annotations

from typing import Any

from bosun.api.errors import invalid, not_supported
from bosun.api.validation.apps import int_or_percent
from bosun.api.validation.fields import Checker, GoValue
from bosun.api.validation.meta import dns1123_subdomain, validate_label_selector, validate_object_meta

UNHEALTHY_POLICIES = ["AlwaysAllow", "IfHealthyBudget"]


def validate_pdb(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        c.add(invalid("spec", GoValue(spec, "policy.PodDisruptionBudgetSpec{...}"),
                      "minAvailable and maxUnavailable cannot be both set"))
    int_or_percent(c, spec, "minAvailable", "spec.minAvailable")
    int_or_percent(c, spec, "maxUnavailable", "spec.maxUnavailable")
    selector = c.obj(spec, "selector", "spec.selector")
    if selector is not None:
        validate_label_selector(c, selector, "spec.selector")
    policy = c.text(spec, "unhealthyPodEvictionPolicy", "spec.unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POLICIES:
        c.add(not_supported("spec.unhealthyPodEvictionPolicy", policy, UNHEALTHY_POLICIES))
