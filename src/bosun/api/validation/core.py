"""core/v1 kinds other than Service: Namespace, Pod, ConfigMap, Secret, Node, PVC, PV, Event,
Endpoints, ServiceAccount."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any

from bosun.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from bosun.api.validation.containers import PROTOCOLS, quantity_map
from bosun.api.validation.devices import validate_device_annotations
from bosun.api.validation.fields import Checker, child, index, key
from bosun.api.validation.meta import (
    IP_MSG,
    check_name,
    config_key,
    dns1123_label,
    dns1123_subdomain,
    label_value,
    qualified_name,
    valid_ip,
    validate_label_selector,
    validate_object_meta,
)
from bosun.api.validation.pod import TAINT_EFFECTS, validate_pod_spec, validate_volumes

MAX_SECRET_SIZE = 1024 * 1024
ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
VOLUME_MODES = ["Block", "Filesystem"]


def validate_namespace(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_label, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    for i, f in enumerate(c.strings(spec, "finalizers", "spec.finalizers")):
        msgs = qualified_name(f)
        if not msgs and "/" not in f and f != "kubernetes":
            msgs = ("name is neither a standard finalizer name nor is it fully qualified",)
        for msg in msgs:
            c.add(invalid(index("spec.finalizers", i), f, msg))


def validate_pod(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        c.add(required("spec.containers"))
        return
    validate_pod_spec(c, spec, "spec")
    validate_device_annotations(c, obj.get("metadata"), spec, "metadata")


def _data_keys(c: Checker, obj: dict[str, Any], field: str, seen: set[str]) -> int:
    """Check one data map's keys and return its size in bytes."""
    size = 0
    m = c.string_map(obj, field, field) or {}
    for k, v in m.items():
        for msg in config_key(k):
            c.add(invalid(key(field, k), k, msg))
        if k in seen:
            c.add(invalid(key(field, k), k, "duplicate of key present in data"))
        seen.add(k)
        size += len(v)
    return size


def validate_configmap(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    seen: set[str] = set()
    size = _data_keys(c, obj, "data", seen)
    size += _data_keys(c, obj, "binaryData", seen)
    c.boolean(obj, "immutable", "immutable")
    if size > MAX_SECRET_SIZE:
        c.add(FieldError("FieldValueTooLong", "data", f"must have at most {MAX_SECRET_SIZE} bytes"))


_SECRET_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def validate_secret(c: Checker, obj: dict[str, Any]) -> None:
    meta = validate_object_meta(c, obj, dns1123_subdomain)
    data = c.string_map(obj, "data", "data") or {}
    size = 0
    for k, v in data.items():
        for msg in config_key(k):
            c.add(invalid(key("data", k), k, msg))
        try:
            size += len(base64.b64decode(v, validate=True))
        except (binascii.Error, ValueError):
            c.add(invalid(key("data", k), "<secret contents redacted>", "illegal base64 data"))
    for k in (c.string_map(obj, "stringData", "stringData") or {}):
        for msg in config_key(k):
            c.add(invalid(key("stringData", k), k, msg))
    if size > MAX_SECRET_SIZE:
        c.add(FieldError("FieldValueTooLong", "data", f"must have at most {MAX_SECRET_SIZE} bytes"))
    c.boolean(obj, "immutable", "immutable")
    stype = c.text(obj, "type", "type") or "Opaque"
    for k in _SECRET_REQUIRED_KEYS.get(stype, ()):
        if k not in data:
            c.add(required(key("data", k)))
    if stype == "kubernetes.io/service-account-token":
        ann = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        if not (ann or {}).get("kubernetes.io/service-account.name"):
            c.add(required(key("metadata.annotations", "kubernetes.io/service-account.name")))
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            c.add(required(key("data", "username")))


def validate_taints(c: Checker, spec: dict[str, Any], path: str) -> None:
    seen: set[tuple[str, str]] = set()
    for i, t in c.objects(spec, "taints", path):
        p = index(path, i)
        k = c.text(t, "key", child(p, "key")) or ""
        for msg in qualified_name(k):
            c.add(invalid(child(p, "key"), k, msg))
        v = c.text(t, "value", child(p, "value")) or ""
        for msg in label_value(v):
            c.add(invalid(child(p, "value"), v, msg))
        effect = c.text(t, "effect", child(p, "effect"))
        if not effect:
            c.add(required(child(p, "effect")))
        elif effect not in TAINT_EFFECTS:
            c.add(not_supported(child(p, "effect"), effect, TAINT_EFFECTS))
        if (k, effect or "") in seen:
            c.add(duplicate(p, f"{k}:{effect}"))
        seen.add((k, effect or ""))


def validate_node(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    validate_taints(c, spec, "spec.taints")
    c.boolean(spec, "unschedulable", "spec.unschedulable")
    cidrs = c.strings(spec, "podCIDRs", "spec.podCIDRs")
    cidr = c.text(spec, "podCIDR", "spec.podCIDR")
    for i, value in ([(0, cidr)] if cidr and not cidrs else list(enumerate(cidrs))):
        path = "spec.podCIDR" if cidr and not cidrs else index("spec.podCIDRs", i)
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            c.add(invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
    status = c.obj(obj, "status", "status") or {}
    quantity_map(c, status, "capacity", "status.capacity")
    quantity_map(c, status, "allocatable", "status.allocatable")
    for i, a in c.objects(status, "addresses", "status.addresses"):
        if not c.text(a, "type", child(index("status.addresses", i), "type")):
            c.add(required(child(index("status.addresses", i), "type")))


def validate_pvc_spec(c: Checker, spec: dict[str, Any], path: str) -> None:
    modes = c.strings(spec, "accessModes", child(path, "accessModes"))
    if not modes:
        c.add(required(child(path, "accessModes"), "at least 1 access mode is required"))
    for m in modes:
        if m not in ACCESS_MODES:
            c.add(not_supported(child(path, "accessModes"), m, ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        c.add(forbidden(child(path, "accessModes"), "may not use ReadWriteOncePod with other access modes"))
    res = c.obj(spec, "resources", child(path, "resources")) or {}
    requests = quantity_map(c, res, "requests", child(path, "resources.requests"))
    storage = requests.get("storage")
    if storage is None:
        c.add(required(key(child(path, "resources"), "storage")))
    elif storage <= 0:
        raw = (res.get("requests") or {}).get("storage")
        c.add(invalid(key(child(path, "resources"), "storage"), raw, "must be greater than zero"))
    quantity_map(c, res, "limits", child(path, "resources.limits"))
    vm = c.text(spec, "volumeMode", child(path, "volumeMode"))
    if vm is not None and vm not in VOLUME_MODES:
        c.add(not_supported(child(path, "volumeMode"), vm, VOLUME_MODES))
    sc = c.text(spec, "storageClassName", child(path, "storageClassName"))
    if sc:
        check_name(c, sc, child(path, "storageClassName"), dns1123_subdomain)
    c.text(spec, "volumeName", child(path, "volumeName"))
    sel = c.obj(spec, "selector", child(path, "selector"))
    if sel is not None:
        validate_label_selector(c, sel, child(path, "selector"))


def validate_pvc(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        c.add(required("spec.accessModes", "at least 1 access mode is required"))
        c.add(required(key("spec.resources", "storage")))
        return
    validate_pvc_spec(c, spec, "spec")


def validate_pv(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    modes = c.strings(spec, "accessModes", "spec.accessModes")
    if not modes:
        c.add(required("spec.accessModes", "at least 1 access mode is required"))
    for m in modes:
        if m not in ACCESS_MODES:
            c.add(not_supported("spec.accessModes", m, ACCESS_MODES))
    capacity = quantity_map(c, spec, "capacity", "spec.capacity")
    if "storage" not in capacity:
        c.add(required("spec.capacity"))
    elif capacity["storage"] <= 0:
        c.add(invalid(key("spec.capacity", "storage"), (spec.get("capacity") or {}).get("storage"),
                      "must be greater than zero"))
    # A PV is a volume source plus PV fields; reuse the pod volume rules on a synthetic volume.
    # `local` (a node-local path, as the local-path provisioner writes) is a PV-only source.
    local = spec.get("local")
    if local is not None:
        if not isinstance(local, dict) or not isinstance(local.get("path"), str) or not local.get("path"):
            c.add(required("spec.local.path"))
    probe = Checker()
    validate_volumes(probe, {"volumes": [{"name": "pv", **{k: v for k, v in spec.items()
                                                             if k not in ("accessModes", "capacity", "local")}}]},
                     "spec")
    for e in probe.errors:
        if e.field == "spec[0]":
            if local is None:
                c.add(required("spec", "must specify a volume type"))
        elif e.field.startswith("spec[0]."):
            c.add(FieldError(e.type, "spec." + e.field[len("spec[0]."):], e.message, e.value, e.has_value))
    policy = c.text(spec, "persistentVolumeReclaimPolicy", "spec.persistentVolumeReclaimPolicy")
    if policy is not None and policy not in ("Delete", "Recycle", "Retain"):
        c.add(not_supported("spec.persistentVolumeReclaimPolicy", policy, ["Delete", "Recycle", "Retain"]))
    vm = c.text(spec, "volumeMode", "spec.volumeMode")
    if vm is not None and vm not in VOLUME_MODES:
        c.add(not_supported("spec.volumeMode", vm, VOLUME_MODES))


def validate_event(c: Checker, obj: dict[str, Any]) -> None:
    meta = validate_object_meta(c, obj, dns1123_subdomain)
    ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else ""
    ref = c.obj(obj, "involvedObject", "involvedObject")
    if ref is None:
        c.add(required("involvedObject"))
        return
    ref_ns = c.text(ref, "namespace", "involvedObject.namespace") or ""
    if not ref_ns:
        if ns not in ("", "default"):
            c.add(invalid("involvedObject.namespace", ref_ns, "does not match event.namespace"))
    elif ns != ref_ns:
        c.add(invalid("involvedObject.namespace", ref_ns, "does not match event.namespace"))
    for f in ("kind", "name", "apiVersion", "uid", "fieldPath", "resourceVersion"):
        c.text(ref, f, f"involvedObject.{f}")
    etype = c.text(obj, "type", "type")
    if etype not in (None, "", "Normal", "Warning"):
        c.add(not_supported("type", etype, ["Normal", "Warning"]))
    c.integer(obj, "count", "count")
    reason = c.text(obj, "reason", "reason") or ""
    if len(reason) > 128:
        c.add(FieldError("FieldValueTooLong", "reason", "must have at most 128 bytes"))
    c.text(obj, "message", "message")


def _endpoint_ports(c: Checker, subset: dict[str, Any], path: str) -> None:
    ports = c.objects(subset, "ports", path)
    for i, port in ports:
        p = index(path, i)
        name = c.text(port, "name", child(p, "name"))
        if name:
            check_name(c, name, child(p, "name"), dns1123_label)
        elif len(ports) > 1:
            c.add(required(child(p, "name")))
        c.in_range(port, "port", child(p, "port"), 1, 65535)
        if "port" not in port:
            c.add(required(child(p, "port")))
        proto = c.text(port, "protocol", child(p, "protocol"))
        if proto is not None and proto not in PROTOCOLS:
            c.add(not_supported(child(p, "protocol"), proto, PROTOCOLS))


def validate_endpoints(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    for s, subset in c.objects(obj, "subsets", "subsets"):
        sp = index("subsets", s)
        for field in ("addresses", "notReadyAddresses"):
            for i, addr in c.objects(subset, field, child(sp, field)):
                p = index(child(sp, field), i)
                ip = c.text(addr, "ip", child(p, "ip"))
                if not ip:
                    c.add(required(child(p, "ip")))
                elif not valid_ip(ip):
                    c.add(invalid(child(p, "ip"), ip, IP_MSG))
                host = c.text(addr, "hostname", child(p, "hostname"))
                if host:
                    check_name(c, host, child(p, "hostname"), dns1123_label)
                c.obj(addr, "targetRef", child(p, "targetRef"))
        _endpoint_ports(c, subset, child(sp, "ports"))


def validate_service_account(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, dns1123_subdomain)
    for i, ref in c.objects(obj, "secrets", "secrets"):
        c.text(ref, "name", child(index("secrets", i), "name"))
    for i, ref in c.objects(obj, "imagePullSecrets", "imagePullSecrets"):
        c.text(ref, "name", child(index("imagePullSecrets", i), "name"))
    c.boolean(obj, "automountServiceAccountToken", "automountServiceAccountToken")
