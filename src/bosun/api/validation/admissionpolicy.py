"""``admissionregistration.k8s.io/v1`` ValidatingAdmissionPolicy and its Binding: upstream's
defaults and validation, with its messages.

Every CEL expression a policy holds (validations, messageExpression, matchConditions,
variables, auditAnnotations) must compile when the policy is written, so that a policy that
is stored can be evaluated: a bad one, or one naming a variable the policy does not declare
(``params`` without a ``paramKind``), is refused with ``compilation failed: ...`` naming the
field (``spec.validations[0].expression``). Fields absent from the matched kinds' schemas are
not refused: they are warned about in ``status.typeChecking``
(:mod:`bosun.api.admission.policytypes`), as upstream does.
"""

from __future__ import annotations

import re
from typing import Any

from bosun.api.errors import duplicate, forbidden, invalid, not_supported, required
from bosun.api.validation.celitems import expression, match_conditions, named_expressions
from bosun.api.validation.fields import Checker, GoList, child, index
from bosun.api.validation.meta import (
    dns1123_label,
    dns1123_subdomain,
    validate_label_selector,
    validate_object_meta,
)

Obj = dict[str, Any]

OPERATIONS = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"]
FAILURE_POLICIES = ["Fail", "Ignore"]
MATCH_POLICIES = ["Equivalent", "Exact"]
SCOPES = ["*", "Cluster", "Namespaced"]
REASONS = ["Forbidden", "Invalid", "RequestEntityTooLarge", "Unauthorized"]
ACTIONS = ["Audit", "Deny", "Warn"]
NOT_FOUND_ACTIONS = ["Allow", "Deny"]
_CEL_IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
# What a policy's expressions may name (upstream's declarations); ``params`` with a paramKind.
POLICY_VARIABLES = frozenset({"object", "oldObject", "request", "namespaceObject", "authorizer", "variables"})


# ---- defaults ---------------------------------------------------------------------------------


def _default_match_resources(m: Any) -> None:
    if not isinstance(m, dict):
        return
    m.setdefault("matchPolicy", "Equivalent")
    m.setdefault("namespaceSelector", {})
    m.setdefault("objectSelector", {})
    for name in ("resourceRules", "excludeResourceRules"):
        for rule in m.get(name) or []:
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")


def default_policy(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("failurePolicy", "Fail")
    _default_match_resources(spec.get("matchConstraints"))


def default_binding(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _default_match_resources(spec.get("matchResources"))
    ref = spec.get("paramRef")
    if isinstance(ref, dict):
        ref.setdefault("parameterNotFoundAction", "Deny")


# ---- shared parts ------------------------------------------------------------------------------


def _one_of(c: Checker, value: str | None, path: str, supported: list[str], *, needed: bool = True) -> None:
    if value is None:
        if needed:
            c.add(required(path, ""))
    elif value not in supported:
        c.add(not_supported(path, value, supported))


def _rules(c: Checker, parent: Obj, name: str, path: str) -> None:
    for i, rule in c.objects(parent, name, path):
        p = index(path, i)
        ops = c.strings(rule, "operations", child(p, "operations"))
        if not ops:
            c.add(required(child(p, "operations"), ""))
        for j, op in enumerate(ops):
            if op not in OPERATIONS:
                c.add(not_supported(index(child(p, "operations"), j), op, OPERATIONS))
        if len(ops) > 1 and "*" in ops:
            c.add(invalid(child(p, "operations"), GoList(ops), "if '*' is present, must not specify other operations"))
        for part in ("apiGroups", "apiVersions", "resources"):
            values = c.strings(rule, part, child(p, part))
            if not values:
                c.add(required(child(p, part), ""))
            elif len(values) > 1 and "*" in values:
                c.add(invalid(child(p, part), GoList(values), "if '*' is present, must not specify other "
                              + {"apiGroups": "API groups", "apiVersions": "API versions"}.get(part, "resources")))
        for j, res in enumerate(c.strings(rule, "resources", child(p, "resources"))):
            if not res:
                c.add(required(index(child(p, "resources"), j), ""))
        _one_of(c, c.text(rule, "scope", child(p, "scope")), child(p, "scope"), SCOPES, needed=False)
        c.strings(rule, "resourceNames", child(p, "resourceNames"))


def _match_resources(c: Checker, m: Obj, path: str, *, rules_needed: bool) -> None:
    for name in ("namespaceSelector", "objectSelector"):
        sel = c.obj(m, name, child(path, name))
        if sel is not None:
            validate_label_selector(c, sel, child(path, name))
    _one_of(c, c.text(m, "matchPolicy", child(path, "matchPolicy")), child(path, "matchPolicy"), MATCH_POLICIES)
    if rules_needed and not c.lst(m, "resourceRules", child(path, "resourceRules")):
        c.add(required(child(path, "resourceRules"), ""))
    _rules(c, m, "resourceRules", child(path, "resourceRules"))
    _rules(c, m, "excludeResourceRules", child(path, "excludeResourceRules"))


# ---- ValidatingAdmissionPolicy -----------------------------------------------------------------


def validate_policy(c: Checker, obj: Obj) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    _one_of(c, c.text(spec, "failurePolicy", "spec.failurePolicy"), "spec.failurePolicy", FAILURE_POLICIES)
    kind = c.obj(spec, "paramKind", "spec.paramKind")
    declared = POLICY_VARIABLES | {"params"} if kind is not None else POLICY_VARIABLES
    if kind is not None:
        api_version = c.text(kind, "apiVersion", "spec.paramKind.apiVersion")
        if not api_version:
            c.add(required("spec.paramKind.apiVersion", ""))
        elif api_version.count("/") > 1 or not api_version.rpartition("/")[2]:
            c.add(invalid("spec.paramKind.apiVersion", api_version, "must be a valid group/version"))
        if not c.text(kind, "kind", "spec.paramKind.kind"):
            c.add(required("spec.paramKind.kind", ""))
    constraints = c.obj(spec, "matchConstraints", "spec.matchConstraints")
    if constraints is None:
        c.add(required("spec.matchConstraints", ""))
    else:
        _match_resources(c, constraints, "spec.matchConstraints", rules_needed=True)
    match_conditions(c, spec, "spec.matchConditions", declared)
    _variables(c, spec, declared)
    validations = c.objects(spec, "validations", "spec.validations")
    audits = c.objects(spec, "auditAnnotations", "spec.auditAnnotations")
    if not validations and not audits:
        c.add(required("spec.validations", "validations or auditAnnotations must contain at least one item"))
    for i, v in validations:
        p = index("spec.validations", i)
        expression(c, v, "expression", child(p, "expression"), declared)
        message = c.text(v, "message", child(p, "message"))
        if message is not None:
            if message and not message.strip():
                c.add(invalid(child(p, "message"), message, "message must be non-empty if specified"))
            elif "\n" in message:
                c.add(invalid(child(p, "message"), message, "message must not contain line breaks"))
        expression(c, v, "messageExpression", child(p, "messageExpression"), declared, needed=False)
        _one_of(c, c.text(v, "reason", child(p, "reason")), child(p, "reason"), REASONS, needed=False)
    named_expressions(c, audits, "spec.auditAnnotations", "key", "valueExpression", declared)


def _variables(c: Checker, spec: Obj, declared: frozenset[str]) -> None:
    for i, var in c.objects(spec, "variables", "spec.variables"):
        p = index("spec.variables", i)
        name = c.text(var, "name", child(p, "name"))
        if not name:
            c.add(required(child(p, "name"), "name is not specified"))
        elif not _CEL_IDENTIFIER.match(name):
            c.add(invalid(child(p, "name"), name, "name is not a valid CEL identifier"))
        expression(c, var, "expression", child(p, "expression"), declared)


# ---- ValidatingAdmissionPolicyBinding ----------------------------------------------------------


def validate_binding(c: Checker, obj: Obj) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    policy = c.text(spec, "policyName", "spec.policyName")
    if not policy:
        c.add(required("spec.policyName", ""))
    else:
        for msg in dns1123_subdomain(policy):
            c.add(invalid("spec.policyName", policy, msg))
    ref = c.obj(spec, "paramRef", "spec.paramRef")
    if ref is not None:
        _param_ref(c, ref, "spec.paramRef")
    m = c.obj(spec, "matchResources", "spec.matchResources")
    if m is not None:
        _match_resources(c, m, "spec.matchResources", rules_needed=False)
    actions = c.strings(spec, "validationActions", "spec.validationActions")
    if not actions:
        c.add(required("spec.validationActions", "at least one validation action is required"))
    seen: set[str] = set()
    for i, action in enumerate(actions):
        p = index("spec.validationActions", i)
        if action in seen:
            c.add(duplicate(p, action))
        elif action not in ACTIONS:
            c.add(not_supported(p, action, ACTIONS))
        seen.add(action)
    if {"Deny", "Warn"} <= seen:
        c.add(invalid("spec.validationActions", GoList(actions), "cannot use both Deny and Warn together"))


def _param_ref(c: Checker, ref: Obj, path: str) -> None:
    name = c.text(ref, "name", child(path, "name"))
    selector = c.obj(ref, "selector", child(path, "selector"))
    if name and selector is not None:
        c.add(forbidden(path, "name and selector are mutually exclusive"))
    elif not name and selector is None:
        c.add(required(path, "one of `name` or `selector` must be set"))
    if name and name != "*":
        for msg in dns1123_subdomain(name):
            c.add(invalid(child(path, "name"), name, msg))
    if selector is not None:
        validate_label_selector(c, selector, child(path, "selector"))
    namespace = c.text(ref, "namespace", child(path, "namespace"))
    if namespace:
        for msg in dns1123_label(namespace):
            c.add(invalid(child(path, "namespace"), namespace, msg))
    _one_of(c, c.text(ref, "parameterNotFoundAction", child(path, "parameterNotFoundAction")),
            child(path, "parameterNotFoundAction"), NOT_FOUND_ACTIONS)
