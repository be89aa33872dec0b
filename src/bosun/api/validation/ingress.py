"""Ingress and IngressClass (networking.k8s.io/v1), with Kubernetes 1.32's field paths and
messages (pkg/apis/networking/validation): a user reads the same 422 as from a kube-apiserver."""

from __future__ import annotations

import ipaddress
from typing import Any

from bosun.api.errors import FieldError, invalid, not_supported, required
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import check_name, dns1035_label, dns1123_subdomain, validate_object_meta

PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
# Exact and Prefix paths are compared element by element: these would never match a request.
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
MAX_CONTROLLER_LENGTH = 250
WILDCARD_MSG = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must "
    "consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character "
    "(e.g. '*.example.com', regex used for validation is "
    "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def _backend(c: Checker, b: dict[str, Any], path: str) -> None:
    svc = c.obj(b, "service", child(path, "service"))
    res = c.obj(b, "resource", child(path, "resource"))
    if svc is not None and res is not None:
        c.add(invalid(path, "", "cannot set both service and resource backends"))
    elif svc is None and res is None:
        c.add(invalid(path, "", "resource or service backend is required"))
    if svc is not None:
        sp = child(path, "service")
        name = c.text(svc, "name", child(sp, "name"))
        if not name:
            c.add(required(child(sp, "name")))
        else:
            check_name(c, name, child(sp, "name"), dns1035_label)
        port = c.obj(svc, "port", child(sp, "port")) or {}
        pname = c.text(port, "name", child(sp, "port.name"))
        number = c.integer(port, "number", child(sp, "port.number"))
        if pname and number:
            c.add(invalid(child(sp, "port"), "", "cannot set both port name & port number"))
        elif not pname and not number:
            c.add(required(child(sp, "port.name"), "port name or number is required"))
        elif number is not None and not 1 <= number <= 65535:
            c.add(invalid(child(sp, "port.number"), number, "must be between 1 and 65535, inclusive"))
    if res is not None:
        for f in ("kind", "name"):
            if not c.text(res, f, child(path, f"resource.{f}")):
                c.add(required(child(path, f"resource.{f}")))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host(c: Checker, host: str, path: str, *, rule: bool) -> None:
    if rule and _is_ip(host):
        c.add(invalid(path, host, "must be a DNS name, not an IP address"))
    if "*" in host:
        if not host.startswith("*.") or dns1123_subdomain(host[2:]):
            c.add(invalid(path, host, WILDCARD_MSG))
    else:
        check_name(c, host, path, dns1123_subdomain)


def _path(c: Checker, hp: dict[str, Any], pp: str) -> None:
    ptype = c.text(hp, "pathType", child(pp, "pathType"))
    path = c.text(hp, "path", child(pp, "path")) or ""
    if ptype is None:
        c.add(required(child(pp, "pathType"), "pathType must be specified"))
        if path and not path.startswith("/"):
            c.add(invalid(child(pp, "path"), path, "must be an absolute path"))
    elif ptype in ("Exact", "Prefix"):
        if not path.startswith("/"):
            c.add(invalid(child(pp, "path"), path, "must be an absolute path"))
        for seq in INVALID_PATH_SEQUENCES:
            if seq in path:
                c.add(invalid(child(pp, "path"), path, f"must not contain '{seq}'"))
        for suffix in INVALID_PATH_SUFFIXES:
            if path.endswith(suffix):
                c.add(invalid(child(pp, "path"), path, f"cannot end with '{suffix}'"))
    elif ptype == "ImplementationSpecific":
        if path and not path.startswith("/"):
            c.add(invalid(child(pp, "path"), path, "must be an absolute path"))
    else:
        c.add(not_supported(child(pp, "pathType"), ptype, PATH_TYPES))
    backend = c.obj(hp, "backend", child(pp, "backend"))
    if backend is None:
        c.add(required(child(pp, "backend")))
    else:
        _backend(c, backend, child(pp, "backend"))


def validate_ingress(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    default = c.obj(spec, "defaultBackend", "spec.defaultBackend")
    rules = c.objects(spec, "rules", "spec.rules")
    if default is None and not rules:
        c.add(invalid("spec", "", "either `defaultBackend` or `rules` must be specified"))
    if default is not None:
        _backend(c, default, "spec.defaultBackend")
    cls = c.text(spec, "ingressClassName", "spec.ingressClassName")
    if cls:
        check_name(c, cls, "spec.ingressClassName", dns1123_subdomain)
    for i, rule in rules:
        rp = index("spec.rules", i)
        host = c.text(rule, "host", child(rp, "host"))
        if host:
            _host(c, host, child(rp, "host"), rule=True)
        http = c.obj(rule, "http", child(rp, "http"))
        if http is None:
            continue
        paths = c.objects(http, "paths", child(rp, "http.paths"))
        if not paths and not http.get("paths"):
            c.add(required(child(rp, "http.paths")))
        for j, hp in paths:
            _path(c, hp, index(child(rp, "http.paths"), j))
    for i, tls in c.objects(spec, "tls", "spec.tls"):
        for j, host in enumerate(c.strings(tls, "hosts", child(index("spec.tls", i), "hosts"))):
            _host(c, host, index(child(index("spec.tls", i), "hosts"), j), rule=False)
        c.text(tls, "secretName", child(index("spec.tls", i), "secretName"))


def _domain_prefixed_path(c: Checker, value: str, path: str) -> None:
    """Kubernetes' IsDomainPrefixedPath: ``example.com/path``."""
    if not value:
        c.add(required(path))
        return
    domain, slash, rest = value.partition("/")
    if not slash:
        c.add(invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")'))
        return
    for msg in dns1123_subdomain(domain):
        c.add(invalid(path, domain, msg))
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-._~%!$&'()*+,;=:@")
    if any(ch not in allowed for ch in rest):
        c.add(invalid(path, rest, "path must be a valid URL path"))


def validate_ingress_class(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    controller = c.text(spec, "controller", "spec.controller") or ""
    if len(controller) > MAX_CONTROLLER_LENGTH:
        c.add(invalid("spec.controller", controller,
                      f"may not be more than {MAX_CONTROLLER_LENGTH} bytes"))
    _domain_prefixed_path(c, controller, "spec.controller")
    params = c.obj(spec, "parameters", "spec.parameters")
    if params is not None:
        for f in ("kind", "name"):
            if not c.text(params, f, f"spec.parameters.{f}"):
                c.add(required(f"spec.parameters.{f}"))
        scope = c.text(params, "scope", "spec.parameters.scope")
        if scope is not None and scope not in ("Cluster", "Namespace"):
            c.add(not_supported("spec.parameters.scope", scope, ["Cluster", "Namespace"]))
        if scope == "Namespace" and not c.text(params, "namespace", "spec.parameters.namespace"):
            c.add(required("spec.parameters.namespace", "`parameters.scope` is set to 'Namespace'"))


def ingress_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """The controller of a class is fixed: Ingresses naming it must not change hands."""
    before = (old.get("spec") or {}).get("controller")
    after = (new.get("spec") or {}).get("controller")
    if before != after:
        return [invalid("spec.controller", after, "field is immutable")]
    return []
