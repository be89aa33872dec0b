"""storage.k8s.io/v1 StorageClass and CSIDriver: what Kubernetes' storage validation accepts.

A class is a promise to every claim that names it (which provisioner, how volumes are bound
and reclaimed), so everything but its metadata, mountOptions and allowVolumeExpansion is
fixed once created, as in Kubernetes.
"""

from __future__ import annotations

from typing import Any

from bosun.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
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


FS_GROUP_POLICIES = ["File", "None", "ReadWriteOnceWithFSType"]
LIFECYCLE_MODES = ["Persistent", "Ephemeral"]
MIN_TOKEN_SECONDS = 600


def validate_csi_driver(c: Checker, obj: dict[str, Any]) -> None:
    """A CSIDriver tells kubelets how to call a driver: every flag is set (the defaults fill
    them), token audiences are distinct and tokens live at least ten minutes, as upstream."""
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    for name, path in (("attachRequired", "spec.attachedRequired"), ("podInfoOnMount", "spec.podInfoOnMount"),
                       ("storageCapacity", "spec.storageCapacity"), ("seLinuxMount", "spec.seLinuxMount")):
        if c.boolean(spec, name, path) is None:
            c.add(required(path))
    policy = c.text(spec, "fsGroupPolicy", "spec.fsGroupPolicy")
    if policy is not None and policy not in FS_GROUP_POLICIES:
        c.add(not_supported("spec.fsGroupPolicy", policy, FS_GROUP_POLICIES))
    audiences: set[str] = set()
    for i, req in c.objects(spec, "tokenRequests", "spec.tokenRequests"):
        p = index("spec.tokenRequests", i)
        audience = c.text(req, "audience", child(p, "audience")) or ""
        if audience in audiences:
            c.add(duplicate(child(p, "audience"), audience))
            continue
        audiences.add(audience)
        seconds = c.integer(req, "expirationSeconds", child(p, "expirationSeconds"))
        where = child(p, "expirationSeconds")
        if seconds is not None and seconds < MIN_TOKEN_SECONDS:
            c.add(invalid(where, seconds, "may not specify a duration less than 10 minutes"))
        if seconds is not None and seconds > 1 << 32:
            c.add(invalid(where, seconds, "may not specify a duration larger than 2^32 seconds"))
    for mode in c.strings(spec, "volumeLifecycleModes", "spec.volumeLifecycleModes"):
        if mode not in LIFECYCLE_MODES:
            c.add(not_supported("spec.volumeLifecycleModes", mode, LIFECYCLE_MODES))


def validate_csi_driver_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """Upstream's two immutable fields (and its spelling of the first one's path)."""
    errs: list[FieldError] = []
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for name, path in (("attachRequired", "spec.attachedRequired"),
                       ("volumeLifecycleModes", "spec.volumeLifecycleModes")):
        if new_spec.get(name) != old_spec.get(name):
            errs.append(invalid(path, new_spec.get(name), "field is immutable"))
    return errs
