"""Pod specs (for Pods and every pod template): volumes, containers, scheduling constraints."""

from __future__ import annotations

from typing import Any

from bosun.api.errors import duplicate, forbidden, invalid, not_supported, required
from bosun.api.validation.containers import validate_container, validate_security_context
from bosun.api.validation.devices import validate_device_annotations
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import (
    check_name,
    dns1123_label,
    dns1123_subdomain,
    label_value,
    qualified_name,
    validate_label_selector,
    validate_labels,
    validate_template_meta,
)
from bosun.api.validation.poddns import validate_dns_config

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
VOLUME_SOURCES = (
    "emptyDir", "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
    "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
    "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
    "image",
)
_NODE_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


def validate_volumes(c: Checker, spec: dict[str, Any], path: str) -> set[str]:
    names: set[str] = set()
    for i, vol in c.objects(spec, "volumes", path):
        p = index(path, i)
        name = c.text(vol, "name", child(p, "name"))
        if not name:
            c.add(required(child(p, "name")))
        else:
            check_name(c, name, child(p, "name"), dns1123_label)
            if name in names:
                c.add(duplicate(child(p, "name"), name))
            names.add(name)
        sources = [s for s in VOLUME_SOURCES if vol.get(s) is not None]
        if not sources:
            c.add(required(p, "must specify a volume type"))
        for extra in sources[1:]:
            c.add(forbidden(child(p, extra), "may not specify more than 1 volume type"))
        for s in sources:
            if not isinstance(vol[s], dict):
                c.obj(vol, s, child(p, s))
        hp = c.obj(vol, "hostPath", child(p, "hostPath"))
        if hp is not None and not c.text(hp, "path", child(p, "hostPath.path")):
            c.add(required(child(p, "hostPath.path")))
        pvc = c.obj(vol, "persistentVolumeClaim", child(p, "persistentVolumeClaim"))
        if pvc is not None and not c.text(pvc, "claimName", child(p, "persistentVolumeClaim.claimName")):
            c.add(required(child(p, "persistentVolumeClaim.claimName")))
        cm = c.obj(vol, "configMap", child(p, "configMap"))
        if cm is not None:
            _check_mode(c, cm, child(p, "configMap"))
        sec = c.obj(vol, "secret", child(p, "secret"))
        if sec is not None:
            _check_mode(c, sec, child(p, "secret"))
        nfs = c.obj(vol, "nfs", child(p, "nfs"))
        if nfs is not None:
            for f in ("server", "path"):
                if not c.text(nfs, f, child(p, f"nfs.{f}")):
                    c.add(required(child(p, f"nfs.{f}")))
        ed = c.obj(vol, "emptyDir", child(p, "emptyDir"))
        if ed is not None:
            medium = c.text(ed, "medium", child(p, "emptyDir.medium"))
            if medium not in (None, "", "Memory") and not str(medium).startswith("HugePages"):
                c.add(not_supported(child(p, "emptyDir.medium"), medium, ["", "Memory", "HugePages"]))
    return names


def _check_mode(c: Checker, src: dict[str, Any], path: str) -> None:
    mode = c.integer(src, "defaultMode", child(path, "defaultMode"))
    if mode is not None and not 0 <= mode <= 0o777:
        c.add(invalid(child(path, "defaultMode"), mode,
                      "must be a number between 0 and 0777 (octal), both inclusive"))


def validate_tolerations(c: Checker, spec: dict[str, Any], path: str) -> None:
    for i, t in c.objects(spec, "tolerations", path):
        p = index(path, i)
        k = c.text(t, "key", child(p, "key")) or ""
        op = c.text(t, "operator", child(p, "operator"))
        value = c.text(t, "value", child(p, "value")) or ""
        effect = c.text(t, "effect", child(p, "effect"))
        seconds = c.integer(t, "tolerationSeconds", child(p, "tolerationSeconds"))
        if k:
            for msg in qualified_name(k):
                c.add(invalid(child(p, "key"), k, msg))
        elif op != "Exists":
            c.add(invalid(child(p, "operator"), op or "", 'operator must be Exists when `key` is empty, '
                                                          'which means "match all values and all keys"'))
        if op in (None, "", "Equal"):
            for msg in label_value(value):
                c.add(invalid(child(p, "value"), value, msg))
        elif op == "Exists":
            if value:
                c.add(invalid(child(p, "operator"), op, "value must be empty when `operator` is 'Exists'"))
        else:
            c.add(not_supported(child(p, "operator"), op, ["Equal", "Exists"]))
        if effect not in (None, "") and effect not in TAINT_EFFECTS:
            c.add(not_supported(child(p, "effect"), effect, TAINT_EFFECTS))
        if seconds is not None and effect != "NoExecute":
            c.add(invalid(child(p, "effect"), effect or "",
                          "effect must be 'NoExecute' when `tolerationSeconds` is set"))


def validate_node_selector_term(c: Checker, term: dict[str, Any], path: str) -> None:
    for field in ("matchExpressions", "matchFields"):
        fpath = child(path, field)
        for i, req in c.objects(term, field, fpath):
            p = index(fpath, i)
            k = c.text(req, "key", child(p, "key"))
            if not k:
                c.add(required(child(p, "key")))
            elif field == "matchExpressions":
                for msg in qualified_name(k):
                    c.add(invalid(child(p, "key"), k, msg))
            op = c.text(req, "operator", child(p, "operator"))
            values = c.strings(req, "values", child(p, "values"))
            if op in ("In", "NotIn") and not values:
                c.add(required(child(p, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
            elif op in ("Exists", "DoesNotExist") and values:
                c.add(forbidden(child(p, "values"),
                                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
            elif op in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
                c.add(required(child(p, "values"), "must be specified single value when `operator` is 'Lt' "
                                                   "or 'Gt'"))
            elif op not in _NODE_SELECTOR_OPS:
                c.add(invalid(child(p, "operator"), op or "", "not a valid selector operator"))


def _weighted(c: Checker, parent: dict[str, Any], path: str) -> list[tuple[int, dict[str, Any]]]:
    items = c.objects(parent, "preferredDuringSchedulingIgnoredDuringExecution", path)
    for i, item in items:
        w = c.integer(item, "weight", child(index(path, i), "weight"))
        if w is None or not 1 <= w <= 100:
            c.add(invalid(child(index(path, i), "weight"), w or 0, "must be in the range 1-100"))
    return items


def validate_affinity(c: Checker, aff: dict[str, Any], path: str) -> None:
    na = c.obj(aff, "nodeAffinity", child(path, "nodeAffinity"))
    if na is not None:
        np = child(path, "nodeAffinity")
        rp = child(np, "requiredDuringSchedulingIgnoredDuringExecution")
        req = c.obj(na, "requiredDuringSchedulingIgnoredDuringExecution", rp)
        if req is not None:
            terms = c.objects(req, "nodeSelectorTerms", child(rp, "nodeSelectorTerms"))
            if not req.get("nodeSelectorTerms"):
                c.add(required(child(rp, "nodeSelectorTerms"), "must have at least one node selector term"))
            for i, term in terms:
                validate_node_selector_term(c, term, index(child(rp, "nodeSelectorTerms"), i))
        pp = child(np, "preferredDuringSchedulingIgnoredDuringExecution")
        for i, item in _weighted(c, na, pp):
            pref = c.obj(item, "preference", child(index(pp, i), "preference"))
            if pref is not None:
                validate_node_selector_term(c, pref, child(index(pp, i), "preference"))
    for kind in ("podAffinity", "podAntiAffinity"):
        pa = c.obj(aff, kind, child(path, kind))
        if pa is None:
            continue
        kp = child(path, kind)
        rp = child(kp, "requiredDuringSchedulingIgnoredDuringExecution")
        for i, term in c.objects(pa, "requiredDuringSchedulingIgnoredDuringExecution", rp):
            _pod_affinity_term(c, term, index(rp, i))
        pp = child(kp, "preferredDuringSchedulingIgnoredDuringExecution")
        for i, item in _weighted(c, pa, pp):
            pterm = c.obj(item, "podAffinityTerm", child(index(pp, i), "podAffinityTerm"))
            if pterm is not None:
                _pod_affinity_term(c, pterm, child(index(pp, i), "podAffinityTerm"))


def _pod_affinity_term(c: Checker, term: dict[str, Any], path: str) -> None:
    tk = c.text(term, "topologyKey", child(path, "topologyKey"))
    if not tk:
        c.add(required(child(path, "topologyKey"), "can not be empty"))
    else:
        for msg in qualified_name(tk):
            c.add(invalid(child(path, "topologyKey"), tk, msg))
    sel = c.obj(term, "labelSelector", child(path, "labelSelector"))
    if sel is not None:
        validate_label_selector(c, sel, child(path, "labelSelector"))
    nsel = c.obj(term, "namespaceSelector", child(path, "namespaceSelector"))
    if nsel is not None:
        validate_label_selector(c, nsel, child(path, "namespaceSelector"))
    c.strings(term, "namespaces", child(path, "namespaces"))


def validate_pod_spec(c: Checker, spec: dict[str, Any], path: str,
                      claim_names: frozenset[str] = frozenset()) -> None:
    """``claim_names``: a StatefulSet's volumeClaimTemplates, which its containers mount by name."""
    volumes = validate_volumes(c, spec, child(path, "volumes")) | claim_names
    port_names: set[str] = set()
    names: set[str] = set()
    cpath = child(path, "containers")
    containers = c.objects(spec, "containers", cpath)
    if not spec.get("containers"):
        c.add(required(cpath))
    for group, init in (("initContainers", True), ("containers", False)):
        gpath = child(path, group)
        items = containers if not init else c.objects(spec, group, gpath)
        for i, ctr in items:
            p = index(gpath, i)
            validate_container(c, ctr, p, volumes=volumes, port_names=port_names, init=init)
            name = ctr.get("name")
            if isinstance(name, str) and name:
                if name in names:
                    c.add(duplicate(child(p, "name"), name))
                names.add(name)
    rp = c.text(spec, "restartPolicy", child(path, "restartPolicy"))
    if rp is not None and rp not in RESTART_POLICIES:
        c.add(not_supported(child(path, "restartPolicy"), rp, RESTART_POLICIES))
    dp = c.text(spec, "dnsPolicy", child(path, "dnsPolicy"))
    if dp is not None and dp not in DNS_POLICIES:
        c.add(not_supported(child(path, "dnsPolicy"), dp, DNS_POLICIES))
    validate_dns_config(c, spec, dp, child(path, "dnsConfig"))
    validate_labels(c, spec, "nodeSelector", child(path, "nodeSelector"))
    validate_tolerations(c, spec, child(path, "tolerations"))
    aff = c.obj(spec, "affinity", child(path, "affinity"))
    if aff is not None:
        validate_affinity(c, aff, child(path, "affinity"))
    sc = c.obj(spec, "securityContext", child(path, "securityContext"))
    if sc is not None:
        validate_security_context(c, sc, child(path, "securityContext"))
    c.non_negative(spec, "terminationGracePeriodSeconds", child(path, "terminationGracePeriodSeconds"))
    c.in_range(spec, "activeDeadlineSeconds", child(path, "activeDeadlineSeconds"), 1, 2**31 - 1)
    for f, fn in (("nodeName", dns1123_subdomain), ("hostname", dns1123_label),
                  ("subdomain", dns1123_label), ("serviceAccountName", dns1123_subdomain),
                  ("priorityClassName", dns1123_subdomain), ("schedulerName", dns1123_subdomain)):
        v = c.text(spec, f, child(path, f))
        if v:
            check_name(c, v, child(path, f), fn)
    for f in ("hostNetwork", "hostPID", "hostIPC", "enableServiceLinks", "automountServiceAccountToken",
              "shareProcessNamespace", "setHostnameAsFQDN", "hostUsers"):
        c.boolean(spec, f, child(path, f))
    c.integer(spec, "priority", child(path, "priority"))
    pp = c.text(spec, "preemptionPolicy", child(path, "preemptionPolicy"))
    if pp is not None and pp not in ("PreemptLowerPriority", "Never"):
        c.add(not_supported(child(path, "preemptionPolicy"), pp, ["Never", "PreemptLowerPriority"]))
    for i, g in c.objects(spec, "schedulingGates", child(path, "schedulingGates")):
        gname = c.text(g, "name", child(index(child(path, "schedulingGates"), i), "name"))
        for msg in qualified_name(gname or ""):
            c.add(invalid(child(index(child(path, "schedulingGates"), i), "name"), gname or "", msg))


def validate_pod_template(
    c: Checker, parent: dict[str, Any], path: str, claim_names: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, str]]:
    """``spec.template`` of a workload: template metadata plus a pod spec. Returns (spec, labels)."""
    template = c.obj(parent, "template", path)
    if template is None:
        if "template" not in parent:
            c.add(required(path))
        return {}, {}
    labels = validate_template_meta(c, template, path)
    spec = c.obj(template, "spec", child(path, "spec"))
    if spec is None:
        c.add(required(child(path, "spec.containers")))
        return {}, labels
    validate_pod_spec(c, spec, child(path, "spec"), claim_names)
    validate_device_annotations(c, template.get("metadata"), spec, child(path, "metadata"))
    return spec, labels
