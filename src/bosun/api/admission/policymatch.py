"""Which writes a ValidatingAdmissionPolicy (its ``matchConstraints``) and a binding (its
``matchResources``) select: Kubernetes' rules for ``resourceRules`` (operations, API groups,
versions, resources with ``*``, ``*/*``, ``pods/*`` and ``*/scale``, scope, resource names),
``excludeResourceRules``, ``namespaceSelector`` and ``objectSelector``.

``matchPolicy: Equivalent`` also matches a write made through another served version of the
same resource (autoscaling/v1 and v2 HorizontalPodAutoscalers), as upstream does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bosun.api.validation.meta import selector_matches

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a rule is matched against: one write, in the words of admission rules."""

    operation: str
    group: str
    version: str
    resource: str  # plural
    subresource: str  # "" for the object itself
    namespaced: bool
    name: str
    # Other served versions of the same group and resource (for matchPolicy Equivalent).
    equivalent_versions: tuple[str, ...] = ()


def _has(values: Iterable[Any], value: str) -> bool:
    return any(v == "*" or v == value for v in values)


def _resource_matches(patterns: Iterable[Any], resource: str, subresource: str) -> bool:
    for p in patterns:
        if not isinstance(p, str):
            continue
        res, _, sub = p.partition("/")
        if not subresource:
            if not sub and res in ("*", resource):
                return True
        elif sub and res in ("*", resource) and sub in ("*", subresource):
            return True
    return False


def rule_matches(rule: Obj, a: Attributes, *, equivalent: bool) -> bool:
    """Whether one ``NamedRuleWithOperations`` selects the write."""
    if not _has(rule.get("operations") or [], a.operation):
        return False
    if not _has(rule.get("apiGroups") or [], a.group):
        return False
    versions = rule.get("apiVersions") or []
    if not _has(versions, a.version) and not (
            equivalent and any(_has(versions, v) for v in a.equivalent_versions)):
        return False
    if not _resource_matches(rule.get("resources") or [], a.resource, a.subresource):
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and a.namespaced) or (scope == "Namespaced" and not a.namespaced):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def _labels(obj: Obj | None) -> dict[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def resources_match(m: Obj, a: Attributes, obj: Obj | None, old: Obj | None, namespace: Obj | None,
                    *, rules_needed: bool) -> bool:
    """Whether ``MatchResources`` ``m`` selects the write: a rule selects it (no rules select
    everything unless ``rules_needed``), no exclude rule does, and the selectors match the
    namespace's labels (a Namespace's own, for a Namespace; cluster-scoped writes pass) and
    the object's or the old object's labels."""
    equivalent = m.get("matchPolicy", "Equivalent") == "Equivalent"
    rules = [r for r in m.get("resourceRules") or [] if isinstance(r, dict)]
    if (rules or rules_needed) and not any(rule_matches(r, a, equivalent=equivalent) for r in rules):
        return False
    if any(rule_matches(r, a, equivalent=equivalent) for r in m.get("excludeResourceRules") or []
           if isinstance(r, dict)):
        return False
    ns_sel = m.get("namespaceSelector")
    if isinstance(ns_sel, dict) and ns_sel:
        if a.group == "" and a.resource == "namespaces":
            if not selector_matches(ns_sel, _labels(obj or old)):
                return False
        elif a.namespaced and not selector_matches(ns_sel, _labels(namespace)):
            return False
    obj_sel = m.get("objectSelector")
    if isinstance(obj_sel, dict) and obj_sel:
        candidates = [o for o in (obj, old) if o is not None]
        if not any(selector_matches(obj_sel, _labels(o)) for o in candidates):
            return False
    return True
