"""apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision; and v1's
ReplicationController, the ReplicaSet's ancestor with a plain map for a selector."""

from __future__ import annotations

import re
from typing import Any

from bosun.api.errors import forbidden, invalid, not_supported, required
from bosun.api.validation.core import validate_pvc_spec
from bosun.api.validation.fields import Checker, GoValue, child, go_selector, go_string_map, index
from bosun.api.validation.meta import (
    check_name,
    dns1123_subdomain,
    selector_is_empty,
    selector_matches,
    validate_label_selector,
    validate_labels,
    validate_object_meta,
)
from bosun.api.validation.pod import validate_pod_template

_PERCENT = re.compile(r"^[0-9]+%$")
PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
               "'93%', regex used for validation is '[0-9]+%')")


def int_or_percent(c: Checker, parent: dict[str, Any], name: str, path: str) -> int | str | None:
    """maxSurge / maxUnavailable: a non-negative int or a percent up to 100%."""
    v = c.int_or_str(parent, name, path)
    if isinstance(v, str):
        if not _PERCENT.match(v):
            c.add(invalid(path, v, PERCENT_MSG))
            return None
        if int(v[:-1]) > 100:
            c.add(invalid(path, v, "must not be greater than 100%"))
    elif isinstance(v, int) and v < 0:
        c.add(invalid(path, v, "must be greater than or equal to 0"))
    return v


def _is_zero(v: int | str | None) -> bool:
    return v == 0 or (isinstance(v, str) and _PERCENT.match(v) is not None and int(v[:-1]) == 0)


def validate_rolling_update(c: Checker, ru: dict[str, Any], path: str, *, surge_default: int | str) -> None:
    unavailable = int_or_percent(c, ru, "maxUnavailable", child(path, "maxUnavailable"))
    surge = int_or_percent(c, ru, "maxSurge", child(path, "maxSurge"))
    if "maxSurge" not in ru:
        surge = surge_default
    if unavailable is not None and _is_zero(unavailable) and _is_zero(surge):
        c.add(invalid(child(path, "maxUnavailable"), unavailable, "may not be 0 when `maxSurge` is 0"))


def _selector_and_template(c: Checker, spec: dict[str, Any], kind: str) -> dict[str, Any]:
    """The checks every controller of pods shares; returns the template's pod spec."""
    sel = c.obj(spec, "selector", "spec.selector")
    if sel is None:
        if spec.get("selector") is None:
            c.add(required("spec.selector"))
    else:
        n = len(c.errors)
        validate_label_selector(c, sel, "spec.selector")
        if selector_is_empty(sel):
            c.add(invalid("spec.selector", go_selector(sel), f"empty selector is invalid for {kind}"))
            sel = None
        elif len(c.errors) > n:
            sel = None
    claims = frozenset(str((t.get("metadata") or {}).get("name")) for t in spec.get("volumeClaimTemplates") or []
                       if isinstance(t, dict) and kind == "statefulset")
    pod_spec, labels = validate_pod_template(c, spec, "spec.template", claims)
    if sel is not None and isinstance(spec.get("template"), dict) and not selector_matches(sel, labels):
        c.add(invalid("spec.template.metadata.labels", go_string_map(labels),
                      "`selector` does not match template `labels`"))
    return pod_spec


def _always_restarts(c: Checker, pod_spec: dict[str, Any], kind: str) -> None:
    rp = pod_spec.get("restartPolicy")
    if isinstance(rp, str) and rp != "Always":
        c.add(not_supported("spec.template.spec.restartPolicy", rp, ["Always"]))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        c.add(forbidden("spec.template.spec.activeDeadlineSeconds",
                        f"activeDeadlineSeconds in {kind} is not Supported"))


def _common(c: Checker, obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        c.add(required("spec.selector"))
        c.add(required("spec.template"))
        return None
    pod_spec = _selector_and_template(c, spec, kind)
    _always_restarts(c, pod_spec, kind)
    c.non_negative(spec, "minReadySeconds", "spec.minReadySeconds")
    c.non_negative(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit")
    return spec


def validate_deployment(c: Checker, obj: dict[str, Any]) -> None:
    spec = _common(c, obj, "deployment")
    if spec is None:
        return
    c.non_negative(spec, "replicas", "spec.replicas")
    c.boolean(spec, "paused", "spec.paused")
    strategy = c.obj(spec, "strategy", "spec.strategy") or {}
    stype = c.text(strategy, "type", "spec.strategy.type")
    ru = c.obj(strategy, "rollingUpdate", "spec.strategy.rollingUpdate")
    if stype is not None and stype not in ("Recreate", "RollingUpdate"):
        c.add(not_supported("spec.strategy.type", stype, ["Recreate", "RollingUpdate"]))
    elif stype == "Recreate" and ru is not None:
        c.add(forbidden("spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'"))
    elif ru is not None:
        validate_rolling_update(c, ru, "spec.strategy.rollingUpdate", surge_default="25%")
    pds = c.integer(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds")
    mrs = spec.get("minReadySeconds")
    if pds is not None:
        if pds < 0:
            c.add(invalid("spec.progressDeadlineSeconds", pds, "must be greater than or equal to 0"))
        elif isinstance(mrs, int) and pds <= mrs:
            c.add(invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))


def validate_replicaset(c: Checker, obj: dict[str, Any]) -> None:
    spec = _common(c, obj, "replicaset")
    if spec is not None:
        c.non_negative(spec, "replicas", "spec.replicas")


def validate_replication_controller(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    c.non_negative(spec, "replicas", "spec.replicas")
    c.non_negative(spec, "minReadySeconds", "spec.minReadySeconds")
    selector = validate_labels(c, spec, "selector", "spec.selector")
    if not selector:
        c.add(required("spec.selector"))
    if not isinstance(spec.get("template"), dict):
        c.add(required("spec.template"))
        return
    pod_spec, labels = validate_pod_template(c, spec, "spec.template", frozenset())
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        c.add(invalid("spec.template.metadata.labels", go_string_map(labels),
                      "selector does not match labels in spec.template"))
    _always_restarts(c, pod_spec, "replicationcontroller")


def validate_daemonset(c: Checker, obj: dict[str, Any]) -> None:
    spec = _common(c, obj, "daemonset")
    if spec is None:
        return
    strategy = c.obj(spec, "updateStrategy", "spec.updateStrategy") or {}
    stype = c.text(strategy, "type", "spec.updateStrategy.type")
    ru = c.obj(strategy, "rollingUpdate", "spec.updateStrategy.rollingUpdate")
    if stype is not None and stype not in ("OnDelete", "RollingUpdate"):
        c.add(not_supported("spec.updateStrategy.type", stype, ["OnDelete", "RollingUpdate"]))
    elif stype == "RollingUpdate" and ru is not None:
        validate_rolling_update(c, ru, "spec.updateStrategy.rollingUpdate", surge_default=0)


def validate_statefulset(c: Checker, obj: dict[str, Any]) -> None:
    spec = _common(c, obj, "statefulset")
    if spec is None:
        return
    c.non_negative(spec, "replicas", "spec.replicas")
    svc = c.text(spec, "serviceName", "spec.serviceName")
    if svc:
        check_name(c, svc, "spec.serviceName", dns1123_subdomain)
    pmp = c.text(spec, "podManagementPolicy", "spec.podManagementPolicy")
    if pmp is not None and pmp not in ("OrderedReady", "Parallel"):
        c.add(invalid("spec.podManagementPolicy", pmp,
                      "must be 'OrderedReady' or 'Parallel'"))
    strategy = c.obj(spec, "updateStrategy", "spec.updateStrategy") or {}
    stype = c.text(strategy, "type", "spec.updateStrategy.type")
    ru = c.obj(strategy, "rollingUpdate", "spec.updateStrategy.rollingUpdate")
    if stype is not None and stype not in ("OnDelete", "RollingUpdate"):
        c.add(invalid("spec.updateStrategy", go_update_strategy(strategy), "must be 'RollingUpdate' or 'OnDelete'"))
    elif stype == "OnDelete" and ru is not None:
        c.add(invalid("spec.updateStrategy.rollingUpdate", "",
                      "only allowed for updateStrategy 'RollingUpdate'"))
    elif ru is not None:
        c.non_negative(ru, "partition", "spec.updateStrategy.rollingUpdate.partition")
        mu = int_or_percent(c, ru, "maxUnavailable", "spec.updateStrategy.rollingUpdate.maxUnavailable")
        if _is_zero(mu):
            c.add(invalid("spec.updateStrategy.rollingUpdate.maxUnavailable", mu, "must be greater than 0"))
    ordinals = c.obj(spec, "ordinals", "spec.ordinals")
    if ordinals is not None:
        c.non_negative(ordinals, "start", "spec.ordinals.start")
    ret = c.obj(spec, "persistentVolumeClaimRetentionPolicy", "spec.persistentVolumeClaimRetentionPolicy")
    for f in ("whenDeleted", "whenScaled"):
        v = c.text(ret, f, f"spec.persistentVolumeClaimRetentionPolicy.{f}")
        if v is not None and v not in ("Retain", "Delete"):
            c.add(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{f}", v, ["Retain", "Delete"]))
    for i, vct in c.objects(spec, "volumeClaimTemplates", "spec.volumeClaimTemplates"):
        p = index("spec.volumeClaimTemplates", i)
        meta = c.obj(vct, "metadata", child(p, "metadata")) or {}
        name = c.text(meta, "name", child(p, "metadata.name"))
        if not name:
            c.add(required(child(p, "metadata.name")))
        else:
            check_name(c, name, child(p, "metadata.name"), dns1123_subdomain)
        validate_labels(c, meta, "labels", child(p, "metadata.labels"))
        vspec = c.obj(vct, "spec", child(p, "spec"))
        if vspec is None:
            c.add(required(child(p, "spec.accessModes"), "at least 1 access mode is required"))
        else:
            validate_pvc_spec(c, vspec, child(p, "spec"))


def go_update_strategy(strategy: dict[str, Any]) -> GoValue:
    return GoValue(strategy, f'apps.StatefulSetUpdateStrategy{{Type:"{strategy.get("type", "")}"}}')


def validate_controller_revision(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    if obj.get("data") is None:
        c.add(required("data"))
    c.non_negative(obj, "revision", "revision")
