"""``flowcontrol.apiserver.k8s.io/v1`` FlowSchema and PriorityLevelConfiguration: upstream's
defaults and validation, with its messages (API Priority and Fairness' configuration; what
Bosun does with it is in :mod:`bosun.api.flowcontrol`)."""

from __future__ import annotations

from typing import Any

from bosun.api.errors import forbidden, invalid, not_supported, required
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import dns1123_subdomain, validate_object_meta

Obj = dict[str, Any]

EXEMPT = "exempt"
PLC_TYPES = ["Exempt", "Limited"]
RESPONSE_TYPES = ["Queue", "Reject"]
DISTINGUISHERS = ["ByNamespace", "ByUser"]
SUBJECT_KINDS = ["Group", "ServiceAccount", "User"]


# ---- defaults ---------------------------------------------------------------------------------


def default_flow_schema(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict) and not spec.get("matchingPrecedence"):
        spec["matchingPrecedence"] = 1000


def default_priority_level(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    limited = spec.get("limited")
    if isinstance(limited, dict):
        limited.setdefault("nominalConcurrencyShares", 30)
        limited.setdefault("lendablePercent", 0)
        response = limited.setdefault("limitResponse", {"type": "Queue"})
        if isinstance(response, dict) and response.get("type") == "Queue":
            queuing = response.setdefault("queuing", {})
            if isinstance(queuing, dict):
                for k, v in (("queues", 64), ("handSize", 8), ("queueLengthLimit", 50)):
                    if not queuing.get(k):
                        queuing[k] = v
    exempt = spec.get("exempt")
    if isinstance(exempt, dict):
        exempt.setdefault("nominalConcurrencyShares", 0)
        exempt.setdefault("lendablePercent", 0)


# ---- FlowSchema --------------------------------------------------------------------------------


def validate_flow_schema(c: Checker, obj: Obj) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    precedence = c.integer(spec, "matchingPrecedence", "spec.matchingPrecedence")
    if precedence is not None and precedence <= 0:
        c.add(invalid("spec.matchingPrecedence", precedence, "must be a positive value"))
    elif precedence is not None and precedence > 10000:
        c.add(invalid("spec.matchingPrecedence", precedence, "must not be greater than 10000"))
    method = c.obj(spec, "distinguisherMethod", "spec.distinguisherMethod")
    if method is not None:
        kind = c.text(method, "type", "spec.distinguisherMethod.type")
        if kind not in DISTINGUISHERS:
            c.add(not_supported("spec.distinguisherMethod.type", kind or "", DISTINGUISHERS))
    ref = c.obj(spec, "priorityLevelConfiguration", "spec.priorityLevelConfiguration") or {}
    name = c.text(ref, "name", "spec.priorityLevelConfiguration.name")
    if not name:
        c.add(required("spec.priorityLevelConfiguration.name", "must reference a priority level"))
    else:
        for msg in dns1123_subdomain(name):
            c.add(invalid("spec.priorityLevelConfiguration.name", name, msg))
    for i, rule in c.objects(spec, "rules", "spec.rules"):
        _policy_rule(c, rule, index("spec.rules", i))


def _policy_rule(c: Checker, rule: Obj, path: str) -> None:
    subjects = c.objects(rule, "subjects", child(path, "subjects"))
    if not subjects:
        c.add(required(child(path, "subjects"), "subjects must contain at least one value"))
    for i, subject in subjects:
        _subject(c, subject, index(child(path, "subjects"), i))
    resource_rules = c.objects(rule, "resourceRules", child(path, "resourceRules"))
    non_resource_rules = c.objects(rule, "nonResourceRules", child(path, "nonResourceRules"))
    if not resource_rules and not non_resource_rules:
        c.add(required(path, "at least one of resourceRules and nonResourceRules has to be non-empty"))
    for i, r in resource_rules:
        p = index(child(path, "resourceRules"), i)
        for part, why in (("verbs", "verbs must contain at least one value"),
                          ("apiGroups", "resource rules must supply at least one api group"),
                          ("resources", "resource rules must supply at least one resource")):
            if not c.strings(r, part, child(p, part)):
                c.add(required(child(p, part), why))
        if not c.strings(r, "namespaces", child(p, "namespaces")) and not c.boolean(
                r, "clusterScope", child(p, "clusterScope")):
            c.add(required(child(p, "namespaces"),
                           "resource rules that are not cluster scoped must supply at least one namespace"))
    for i, r in non_resource_rules:
        p = index(child(path, "nonResourceRules"), i)
        if not c.strings(r, "verbs", child(p, "verbs")):
            c.add(required(child(p, "verbs"), "verbs must contain at least one value"))
        if not c.strings(r, "nonResourceURLs", child(p, "nonResourceURLs")):
            c.add(required(child(p, "nonResourceURLs"), "nonResourceURLs must contain at least one value"))


def _subject(c: Checker, subject: Obj, path: str) -> None:
    kind = c.text(subject, "kind", child(path, "kind"))
    part = {"User": "user", "Group": "group", "ServiceAccount": "serviceAccount"}.get(kind or "")
    if part is None:
        c.add(not_supported(child(path, "kind"), kind or "", SUBJECT_KINDS))
        return
    body = c.obj(subject, part, child(path, part))
    if body is None:
        c.add(required(child(path, part), f"{part} is required when subject kind is '{kind}'"))
        return
    if not c.text(body, "name", child(child(path, part), "name")):
        c.add(required(child(child(path, part), "name"), ""))
    if part == "serviceAccount" and not c.text(body, "namespace", child(child(path, part), "namespace")):
        c.add(required(child(child(path, part), "namespace"), "must specify namespace for service account"))


# ---- PriorityLevelConfiguration ----------------------------------------------------------------


def validate_priority_level(c: Checker, obj: Obj) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    spec = c.obj(obj, "spec", "spec") or {}
    kind = c.text(spec, "type", "spec.type")
    if kind in PLC_TYPES and (name == EXEMPT) != (kind == "Exempt"):
        c.add(invalid("spec.type", kind, "type must be 'Exempt' if and only if name is 'exempt'"))
    limited = c.obj(spec, "limited", "spec.limited")
    exempt = c.obj(spec, "exempt", "spec.exempt")
    if kind == "Exempt":
        if limited is not None:
            c.add(forbidden("spec.limited", "must be nil if the type is not Limited"))
        if exempt is not None:
            _shares(c, exempt, "spec.exempt")
    elif kind == "Limited":
        if exempt is not None:
            c.add(forbidden("spec.exempt", "must be nil if the type is Limited"))
        if limited is None:
            c.add(required("spec.limited", "must not be empty when type is Limited"))
        else:
            _limited(c, limited, "spec.limited")
    else:
        c.add(not_supported("spec.type", kind or "", PLC_TYPES))


def _shares(c: Checker, part: Obj, path: str) -> None:
    shares = c.integer(part, "nominalConcurrencyShares", child(path, "nominalConcurrencyShares"))
    if shares is not None and shares < 0:
        c.add(invalid(child(path, "nominalConcurrencyShares"), shares, "must be a non-negative integer"))
    lendable = c.integer(part, "lendablePercent", child(path, "lendablePercent"))
    if lendable is not None and not 0 <= lendable <= 100:
        c.add(invalid(child(path, "lendablePercent"), lendable, "must be between 0 and 100, inclusive"))


def _limited(c: Checker, limited: Obj, path: str) -> None:
    _shares(c, limited, path)
    borrowing = c.integer(limited, "borrowingLimitPercent", child(path, "borrowingLimitPercent"))
    if borrowing is not None and borrowing < 0:
        c.add(invalid(child(path, "borrowingLimitPercent"), borrowing, "if specified, must be a non-negative integer"))
    response = c.obj(limited, "limitResponse", child(path, "limitResponse")) or {}
    rpath = child(path, "limitResponse")
    rtype = c.text(response, "type", child(rpath, "type"))
    queuing = c.obj(response, "queuing", child(rpath, "queuing"))
    if rtype == "Reject":
        if queuing is not None:
            c.add(forbidden(child(rpath, "queuing"), "must be nil if limited.limitResponse.type is not Limited"))
    elif rtype == "Queue":
        if queuing is None:
            c.add(required(child(rpath, "queuing"), "must not be empty if limited.limitResponse.type is Limited"))
        else:
            _queuing(c, queuing, child(rpath, "queuing"))
    else:
        c.add(not_supported(child(rpath, "type"), rtype or "", RESPONSE_TYPES))


def _queuing(c: Checker, q: Obj, path: str) -> None:
    values: dict[str, int] = {}
    for name in ("queueLengthLimit", "queues", "handSize"):
        v = c.integer(q, name, child(path, name))
        if v is not None and v <= 0:
            c.add(invalid(child(path, name), v, "must be positive"))
        elif v is not None:
            values[name] = v
    if "handSize" in values and "queues" in values and values["handSize"] > values["queues"]:
        c.add(invalid(child(path, "handSize"), values["handSize"],
                      f"should not be greater than queues ({values['queues']})"))
