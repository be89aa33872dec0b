"""``apiregistration.k8s.io/v1`` APIService: upstream's validation, with its messages.

An APIService names a group and version and either nothing (served by this server: a
*Local* APIService) or the Service of an aggregated API server that serves them.
"""

from __future__ import annotations

from typing import Any

from bosun.api.errors import invalid, required
from bosun.api.validation.fields import Checker, child
from bosun.api.validation.meta import dns1035_label, dns1123_subdomain, validate_object_meta


def default_api_service(obj: dict[str, Any]) -> None:
    service = (obj.get("spec") or {}).get("service")
    if isinstance(service, dict) and service.get("port") is None:
        service["port"] = 443


def validate_api_service(c: Checker, obj: dict[str, Any]) -> None:
    spec = c.obj(obj, "spec", "spec") or {}
    group = c.text(spec, "group", "spec.group") or ""
    version = c.text(spec, "version", "spec.version") or ""
    wanted = f"{version}.{group}"

    def name_rule(name: str) -> list[str]:
        if name != wanted:
            return [f'must be `spec.version+"."+spec.group`: "{wanted}"']
        return []

    validate_object_meta(c, obj, name_rule, namespaced=False)
    if not group and version != "v1":
        c.add(required("spec.group", "only v1 may have an empty group and it better be legacy kube"))
    if group:
        for msg in dns1123_subdomain(group):
            c.add(invalid("spec.group", group, msg))
    for msg in dns1035_label(version):
        c.add(invalid("spec.version", version, msg))
    gpm = c.integer(spec, "groupPriorityMinimum", "spec.groupPriorityMinimum") or 0
    if not 0 < gpm <= 20000:
        c.add(invalid("spec.groupPriorityMinimum", gpm, "must be positive and less than 20000"))
    vp = c.integer(spec, "versionPriority", "spec.versionPriority") or 0
    if not 0 < vp <= 1000:
        c.add(invalid("spec.versionPriority", vp, "must be positive and less than 1000"))
    ca = c.text(spec, "caBundle", "spec.caBundle") or ""
    skip = bool(c.boolean(spec, "insecureSkipTLSVerify", "spec.insecureSkipTLSVerify"))
    service = c.obj(spec, "service", "spec.service")
    if service is None:
        if ca:
            c.add(invalid("spec.caBundle", f"{len(ca) * 3 // 4} bytes", "local APIServices may not have a caBundle"))
        if skip:
            c.add(invalid("spec.insecureSkipTLSVerify", True,
                          "local APIServices may not have insecureSkipTLSVerify"))
        return
    path = "spec.service"
    if not c.text(service, "namespace", child(path, "namespace")):
        c.add(required(child(path, "namespace")))
    if not c.text(service, "name", child(path, "name")):
        c.add(required(child(path, "name")))
    port = c.integer(service, "port", child(path, "port"))
    if port is not None and not 0 < port < 65536:
        c.add(invalid(child(path, "port"), port, "must be between 1 and 65535, inclusive"))
    if skip and ca:
        c.add(invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"))
