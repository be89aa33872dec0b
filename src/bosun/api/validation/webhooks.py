"""``admissionregistration.k8s.io/v1`` Validating- and MutatingWebhookConfiguration:
upstream's defaults and validation, with its messages.

A configuration is a list of webhooks; the server calls each on the writes its rules,
selectors and match conditions pick (:mod:`bosun.api.admission.webhooks`). The rules here are
what upstream's ``pkg/apis/admissionregistration/validation`` refuses for v1, so a manifest
Kubernetes refuses is refused here with the same field path and words.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bosun.api.errors import duplicate, invalid, not_supported, required
from bosun.api.validation.celitems import match_conditions
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import (
    dns1035_label,
    dns1123_subdomain,
    validate_label_selector,
    validate_object_meta,
)

Obj = dict[str, Any]

SIDE_EFFECTS_V1 = ["None", "NoneOnDryRun"]
FAILURE_POLICIES = ["Fail", "Ignore"]
MATCH_POLICIES = ["Equivalent", "Exact"]
REINVOCATION_POLICIES = ["IfNeeded", "Never"]
OPERATIONS = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"]
SCOPES = ["*", "Cluster", "Namespaced"]
REVIEW_VERSIONS = ["v1", "v1beta1"]
URL_FORM = "; desired format: https://host[/path]"

# What a webhook's match condition may name (upstream's declarations; no params).
WEBHOOK_VARIABLES = frozenset({"object", "oldObject", "request", "authorizer"})


# ---- defaults ------------------------------------------------------------------------------


def default_validating(obj: Obj) -> None:
    for hook in _hooks(obj):
        _default_hook(hook)


def default_mutating(obj: Obj) -> None:
    for hook in _hooks(obj):
        _default_hook(hook)
        hook.setdefault("reinvocationPolicy", "Never")


def _hooks(obj: Obj) -> list[Obj]:
    hooks = obj.get("webhooks")
    return [h for h in hooks if isinstance(h, dict)] if isinstance(hooks, list) else []


def _default_hook(hook: Obj) -> None:
    hook.setdefault("failurePolicy", "Fail")
    hook.setdefault("matchPolicy", "Equivalent")
    hook.setdefault("namespaceSelector", {})
    hook.setdefault("objectSelector", {})
    hook.setdefault("timeoutSeconds", 10)
    for rule in hook.get("rules") or []:
        if isinstance(rule, dict):
            rule.setdefault("scope", "*")
    service = (hook.get("clientConfig") or {}).get("service")
    if isinstance(service, dict):
        service.setdefault("port", 443)


# ---- validation ----------------------------------------------------------------------------


def validate_validating(c: Checker, obj: Obj) -> None:
    _validate(c, obj, mutating=False)


def validate_mutating(c: Checker, obj: Obj) -> None:
    _validate(c, obj, mutating=True)


def _validate(c: Checker, obj: Obj, *, mutating: bool) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    names: set[str] = set()
    for i, hook in c.objects(obj, "webhooks", "webhooks"):
        path = index("webhooks", i)
        name = c.text(hook, "name", child(path, "name")) or ""
        if name in names:
            c.add(duplicate(child(path, "name"), name))
        names.add(name)
        _validate_hook(c, hook, path, mutating=mutating)


def _validate_hook(c: Checker, hook: Obj, path: str, *, mutating: bool) -> None:
    name = c.text(hook, "name", child(path, "name")) or ""
    _fully_qualified(c, name, child(path, "name"))
    for i, rule in c.objects(hook, "rules", child(path, "rules")):
        _validate_rule(c, rule, index(child(path, "rules"), i))
    _one_of(c, hook, "failurePolicy", child(path, "failurePolicy"), FAILURE_POLICIES)
    _one_of(c, hook, "matchPolicy", child(path, "matchPolicy"), MATCH_POLICIES)
    side = c.text(hook, "sideEffects", child(path, "sideEffects"))
    if side is None:
        c.add(required(child(path, "sideEffects"), "must specify one of " + ", ".join(SIDE_EFFECTS_V1)))
    elif side not in SIDE_EFFECTS_V1:
        c.add(not_supported(child(path, "sideEffects"), side, SIDE_EFFECTS_V1))
    timeout = c.integer(hook, "timeoutSeconds", child(path, "timeoutSeconds"))
    if timeout is not None and not 1 <= timeout <= 30:
        c.add(invalid(child(path, "timeoutSeconds"), timeout, "the timeout value must be between 1 and 30 seconds"))
    for field in ("namespaceSelector", "objectSelector"):
        sel = c.obj(hook, field, child(path, field))
        if sel is not None:
            validate_label_selector(c, sel, child(path, field))
    _validate_review_versions(c, hook, child(path, "admissionReviewVersions"))
    _validate_client_config(c, hook, child(path, "clientConfig"))
    match_conditions(c, hook, child(path, "matchConditions"), WEBHOOK_VARIABLES)
    if mutating:
        _one_of(c, hook, "reinvocationPolicy", child(path, "reinvocationPolicy"), REINVOCATION_POLICIES)


def _one_of(c: Checker, parent: Obj, name: str, path: str, allowed: list[str]) -> None:
    value = c.text(parent, name, path)
    if value is not None and value not in allowed:
        c.add(not_supported(path, value, allowed))


def _fully_qualified(c: Checker, name: str, path: str) -> None:
    if not name:
        c.add(required(path))
        return
    name = name.removesuffix(".")
    errs = dns1123_subdomain(name)
    if errs:
        c.add(invalid(path, name, ",".join(errs)))
    elif len(name.split(".")) < 3:
        c.add(invalid(path, name, "should be a domain with at least three segments separated by dots"))


def _validate_rule(c: Checker, rule: Obj, path: str) -> None:
    ops = c.strings(rule, "operations", child(path, "operations"))
    if not ops:
        c.add(required(child(path, "operations")))
    if len(ops) > 1 and "*" in ops:
        c.add(invalid(child(path, "operations"), ops, "if '*' is present, must not specify other operations"))
    for i, op in enumerate(ops):
        if op not in OPERATIONS:
            c.add(not_supported(index(child(path, "operations"), i), op, OPERATIONS))
    groups = c.strings(rule, "apiGroups", child(path, "apiGroups"))
    if not groups:
        c.add(required(child(path, "apiGroups")))
    if len(groups) > 1 and "*" in groups:
        c.add(invalid(child(path, "apiGroups"), groups, "if '*' is present, must not specify other API groups"))
    versions = c.strings(rule, "apiVersions", child(path, "apiVersions"))
    if not versions:
        c.add(required(child(path, "apiVersions")))
    if len(versions) > 1 and "*" in versions:
        c.add(invalid(child(path, "apiVersions"), versions, "if '*' is present, must not specify other API versions"))
    for i, version in enumerate(versions):
        if not version:
            c.add(required(index(child(path, "apiVersions"), i)))
    _validate_resources(c, c.strings(rule, "resources", child(path, "resources")), child(path, "resources"))
    _one_of(c, rule, "scope", child(path, "scope"), SCOPES)


def _validate_resources(c: Checker, resources: list[str], path: str) -> None:
    if not resources:
        c.add(required(path))
    wildcard_subs: set[str] = set()  # x/*
    wildcard_res: set[str] = set()  # */x
    single = plain = False
    for i, item in enumerate(resources):
        if not item:
            c.add(required(index(path, i)))
            continue
        single = single or item == "*"
        res, slash, sub = item.partition("/")
        if not slash:
            plain = item != "*"
            continue
        if res in wildcard_subs:
            c.add(invalid(index(path, i), item, f"if '{res}/*' is present, must not specify {item}"))
        if sub in wildcard_res:
            c.add(invalid(index(path, i), item, f"if '*/{sub}' is present, must not specify {item}"))
        if sub == "*":
            wildcard_subs.add(res)
        if res == "*":
            wildcard_res.add(sub)
    if len(resources) > 1 and "*/*" in resources:
        c.add(invalid(path, resources, "if '*/*' is present, must not specify other resources"))
    if single and plain:
        c.add(invalid(path, resources, "if '*' is present, must not specify other resources without subresources"))


def _validate_review_versions(c: Checker, hook: Obj, path: str) -> None:
    versions = c.strings(hook, "admissionReviewVersions", path)
    if not versions:
        c.add(required(path, "must specify one of " + ", ".join(REVIEW_VERSIONS)))
        return
    seen: set[str] = set()
    for i, v in enumerate(versions):
        if v in seen:
            c.add(invalid(index(path, i), v, "duplicate version"))
        seen.add(v)
        for msg in dns1035_label(v):
            c.add(invalid(index(path, i), v, msg))
    if not seen & set(REVIEW_VERSIONS):
        c.add(invalid(path, versions, "must include at least one of " + ", ".join(REVIEW_VERSIONS)))


def _validate_client_config(c: Checker, hook: Obj, path: str) -> None:
    cc = c.obj(hook, "clientConfig", path) or {}
    url = c.text(cc, "url", child(path, "url"))
    service = c.obj(cc, "service", child(path, "service"))
    if (url is None) == (service is None):
        c.add(required(path, "exactly one of url or service is required"))
    elif url is not None:
        _validate_url(c, url, child(path, "url"))
    elif service is not None:
        _validate_service(c, service, child(path, "service"))


def _validate_url(c: Checker, url: str, path: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError as exc:
        c.add(required(path, f"url must be a valid URL: {exc}{URL_FORM}"))
        return
    if parts.scheme != "https":
        c.add(invalid(path, parts.scheme, "'https' is the only allowed URL scheme" + URL_FORM))
    if not host:
        c.add(invalid(path, host, "host must be specified" + URL_FORM))
    if "@" in parts.netloc:
        c.add(invalid(path, parts.netloc.rpartition("@")[0], "user information is not permitted in the URL"))
    if parts.fragment:
        c.add(invalid(path, parts.fragment, "fragments are not permitted in the URL"))
    if parts.query:
        c.add(invalid(path, parts.query, "query parameters are not permitted in the URL"))


def _validate_service(c: Checker, service: Obj, path: str) -> None:
    if not c.text(service, "name", child(path, "name")):
        c.add(required(child(path, "name"), "service name is required"))
    if not c.text(service, "namespace", child(path, "namespace")):
        c.add(required(child(path, "namespace"), "service namespace is required"))
    port = c.integer(service, "port", child(path, "port"))
    if port is not None and not 0 < port < 65536:
        c.add(invalid(child(path, "port"), port, "port is not valid: must be between 1 and 65535, inclusive"))
    url_path = c.text(service, "path", child(path, "path"))
    if url_path is None or url_path in ("", "/"):
        return
    where = child(path, "path")
    if url_path == "//":
        c.add(invalid(where, url_path, "segment[0] may not be empty"))
    if not url_path.startswith("/"):
        c.add(invalid(where, url_path, "must start with a '/'"))
    for i, step in enumerate(url_path[1:].removesuffix("/").split("/")):
        if not step:
            c.add(invalid(where, url_path, f"segment[{i}] may not be empty"))
            continue
        for msg in dns1123_subdomain(step):
            c.add(invalid(where, url_path, f"segment[{i}]: {msg}"))
