"""What an update may not change (immutable fields), per kind (each kind's strategy names its rule).

Runs after defaults on the new object and on the stored one, so a field the user left out
and the server filled in compares equal.
"""

from __future__ import annotations

from typing import Any

from bosun.api.errors import FieldError, forbidden, invalid
from bosun.api.validation.fields import GoList, go_selector
from bosun.api.validation.pod import VOLUME_SOURCES

POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
    "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
    "previously negative)"
)
STS_UPDATE_MSG = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)
PVC_UPDATE_MSG = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName for "
    "bound claims"
)
_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds")


def _d(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def _immutable(errs: list[FieldError], new: Any, old: Any, path: str, *fields: str) -> None:
    a, b = _d(new, *fields), _d(old, *fields)
    if a != b:
        shown = go_selector(a) if fields[-1] == "selector" and isinstance(a, dict) else a
        errs.append(invalid(path, shown, "field is immutable"))


def selector_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    _immutable(errs, new, old, "spec.selector", "spec", "selector")
    return errs


def statefulset_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = selector_update(new, old)
    ns, os_ = _d(new, "spec"), _d(old, "spec")
    if isinstance(ns, dict) and isinstance(os_, dict):
        rest_new = {k: v for k, v in ns.items() if k not in _STS_MUTABLE and k != "selector"}
        rest_old = {k: v for k, v in os_.items() if k not in _STS_MUTABLE and k != "selector"}
        if rest_new != rest_old:
            errs.append(forbidden("spec", STS_UPDATE_MSG))
    return errs


def job_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = selector_update(new, old)
    _immutable(errs, new, old, "spec.completionMode", "spec", "completionMode")
    if _d(new, "spec", "template") != _d(old, "spec", "template"):
        errs.append(invalid("spec.template", "", "field is immutable"))
    return errs


def pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    ns, os_ = _d(new, "spec"), _d(old, "spec")
    if not isinstance(ns, dict) or not isinstance(os_, dict):
        return [] if ns == os_ else [forbidden("spec", POD_UPDATE_MSG)]
    if ns == os_:
        return []  # the common case (status, labels, finalizers): nothing to mask or compare
    errs: list[FieldError] = []
    masked = dict(os_)  # shallow: only the container lists below are rewritten, as new lists
    for group in ("containers", "initContainers"):
        new_ctrs, old_ctrs = ns.get(group), masked.get(group)
        if isinstance(new_ctrs, list) and isinstance(old_ctrs, list) and len(new_ctrs) == len(old_ctrs):
            masked[group] = [
                {**oc, "image": nc["image"]} if isinstance(nc, dict) and isinstance(oc, dict) and "image" in nc
                else oc
                for nc, oc in zip(new_ctrs, old_ctrs, strict=True)
            ]
    new_ads, old_ads = ns.get("activeDeadlineSeconds"), os_.get("activeDeadlineSeconds")
    if new_ads != old_ads:
        if new_ads is None:
            errs.append(invalid("spec.activeDeadlineSeconds", None,
                                "must not update from a positive integer to nil value"))
        elif isinstance(old_ads, int) and isinstance(new_ads, int) and new_ads > old_ads:
            errs.append(invalid("spec.activeDeadlineSeconds", new_ads,
                                "must be less than or equal to previous value"))
        masked["activeDeadlineSeconds"] = new_ads
    old_tol, new_tol = os_.get("tolerations") or [], ns.get("tolerations") or []
    if isinstance(old_tol, list) and isinstance(new_tol, list):
        missing = [t for t in old_tol if t not in new_tol]
        if missing:
            errs.append(forbidden("spec.tolerations", "existing toleration can not be modified except its "
                                                      "tolerationSeconds"))
        masked["tolerations"] = ns.get("tolerations")
    ogp = os_.get("terminationGracePeriodSeconds")
    if isinstance(ogp, int) and ogp < 0 and ns.get("terminationGracePeriodSeconds") == 1:
        masked["terminationGracePeriodSeconds"] = 1
    old_gates, new_gates = os_.get("schedulingGates") or [], ns.get("schedulingGates") or []
    if isinstance(old_gates, list) and isinstance(new_gates, list) and all(g in old_gates for g in new_gates):
        masked["schedulingGates"] = ns.get("schedulingGates")
    if _strip_none(masked) != _strip_none(ns):
        errs.append(forbidden("spec", POD_UPDATE_MSG))
    return errs


def _cluster_ips(obj: dict[str, Any]) -> list[Any]:
    ips = _d(obj, "spec", "clusterIPs")
    if isinstance(ips, list) and ips:
        return ips
    ip = _d(obj, "spec", "clusterIP")
    return [ip] if ip else []


def service_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """A Service keeps its cluster IP for life (the allocator handed it out once)."""
    if "ExternalName" in (_d(new, "spec", "type"), _d(old, "spec", "type")):
        return []
    old_ips, new_ips = _cluster_ips(old), _cluster_ips(new)
    if not old_ips or old_ips[0] in ("", None):
        return []
    if not new_ips:
        return [invalid("spec.clusterIPs[0]", GoList(), "primary clusterIP can not be unset")]
    if new_ips[0] != old_ips[0]:
        return [invalid("spec.clusterIPs[0]", GoList(new_ips), "may not change once set")]
    return []


def pvc_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    ns, os_ = _d(new, "spec"), _d(old, "spec")
    if not isinstance(ns, dict) or not isinstance(os_, dict):
        return [] if ns == os_ else [forbidden("spec", PVC_UPDATE_MSG)]
    if ns == os_:
        return []
    masked = dict(os_)
    masked["resources"] = ns.get("resources")
    if not os_.get("volumeName"):
        masked["volumeName"] = ns.get("volumeName")
    for f in ("volumeAttributesClassName",):
        masked[f] = ns.get(f)
    if _strip_none(masked) == _strip_none(ns):
        return []
    return [forbidden("spec", PVC_UPDATE_MSG)]


def _strip_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def pv_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    for src in VOLUME_SOURCES:
        if _d(new, "spec", src) != _d(old, "spec", src):
            return [forbidden("spec.persistentvolumesource",
                              "spec.persistentvolumesource is immutable after creation")]
    return []


def _immutable_data(new: dict[str, Any], old: dict[str, Any], fields: tuple[str, ...]) -> list[FieldError]:
    errs: list[FieldError] = []
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        for f in fields:
            if (new.get(f) or {}) != (old.get(f) or {}):
                errs.append(forbidden(f, "field is immutable when `immutable` is set"))
    return errs


def configmap_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return _immutable_data(new, old, ("data", "binaryData"))


def secret_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = _immutable_data(new, old, ("data",))
    if (new.get("type") or "Opaque") != (old.get("type") or "Opaque"):
        errs.append(invalid("type", new.get("type"), "field is immutable"))
    return errs


def priority_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    if new.get("value") != old.get("value"):
        return [forbidden("value", "may not be changed in an update.")]
    return []


def node_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    old_cidr = _d(old, "spec", "podCIDR")
    if old_cidr and _d(new, "spec", "podCIDR") != old_cidr:
        return [forbidden("spec.podCIDR", "node updates may not change podCIDR except from \"\" to valid")]
    return []
