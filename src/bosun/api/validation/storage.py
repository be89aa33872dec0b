"""storage.k8s.io/v1 StorageClass: what Kubernetes' storage validation accepts.

A class is a promise to every claim that names it (which provisioner, how volumes are bound
and reclaimed), so everything but its metadata, mountOptions and allowVolumeExpansion is
fixed once created, as in Kubernetes.
"""

from __future__ import annotations

from typing import Any

from bosun.api.errors import FieldError, forbidden, invalid, not_supported, required
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import check_name, dns1123_subdomain, qualified_name, validate_object_meta

RECLAIM_POLICIES = ["Delete", "Retain"]
BINDING_MODES = ["Immediate", "WaitForFirstConsumer"]
MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024


def _parameters(c: Checker, obj: dict[str, Any]) -> None:
    params = c.string_map(obj, "parameters", "parameters")
    if not params:
        return
    if len(params) > MAX_PARAMETERS:
        c.add(FieldError("FieldValueTooLong", "parameters", f"must have at most {MAX_PARAMETERS} items"))
        return
    size = 0
    for k, v in params.items():
        if not k:
            c.add(invalid("parameters", k, "field can not be empty."))
        size += len(k) + len(v)
    if size > MAX_PARAMETERS_SIZE:
        c.add(FieldError("FieldValueTooLong", "parameters", f"must have at most {MAX_PARAMETERS_SIZE} bytes"))


def _allowed_topologies(c: Checker, obj: dict[str, Any]) -> None:
    for i, term in c.objects(obj, "allowedTopologies", "allowedTopologies"):
        path = index("allowedTopologies", i)
        exprs = c.objects(term, "matchLabelExpressions", child(path, "matchLabelExpressions"))
        if not exprs:
            c.add(required(child(path, "matchLabelExpressions"), "must have at least one label expression"))
        for j, expr in exprs:
            epath = index(child(path, "matchLabelExpressions"), j)
            k = c.text(expr, "key", child(epath, "key"))
            if k is not None:
                check_name(c, k, child(epath, "key"), qualified_name)
            if not c.strings(expr, "values", child(epath, "values")):
                c.add(required(child(epath, "values"), "must specify as least one value"))


def validate_storage_class(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    provisioner = c.text(obj, "provisioner", "provisioner")
    if not provisioner:
        c.add(required("provisioner"))
    else:
        check_name(c, provisioner.lower(), "provisioner", qualified_name)
    _parameters(c, obj)
    policy = c.text(obj, "reclaimPolicy", "reclaimPolicy")
    if policy and policy not in RECLAIM_POLICIES:
        c.add(not_supported("reclaimPolicy", policy, RECLAIM_POLICIES))
    mode = c.text(obj, "volumeBindingMode", "volumeBindingMode")
    if mode is None and obj.get("volumeBindingMode") is None:
        c.add(required("volumeBindingMode"))
    elif mode is not None and mode not in BINDING_MODES:
        c.add(not_supported("volumeBindingMode", mode, BINDING_MODES))
    c.strings(obj, "mountOptions", "mountOptions")
    c.boolean(obj, "allowVolumeExpansion", "allowVolumeExpansion")
    _allowed_topologies(c, obj)


def validate_storage_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    if (new.get("parameters") or {}) != (old.get("parameters") or {}):
        errs.append(forbidden("parameters", "updates to parameters are forbidden."))
    if new.get("provisioner") != old.get("provisioner"):
        errs.append(forbidden("provisioner", "updates to provisioner are forbidden."))
    if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
        errs.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        errs.append(invalid("volumeBindingMode", new.get("volumeBindingMode"), "field is immutable"))
    return errs
