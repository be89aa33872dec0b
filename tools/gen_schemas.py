"""Generate ``src/bosun/api/schemas/types.json`` from the official ``kubernetes`` Python client.

Why generated: the API server must know every field of every kind it serves (to reject or drop
unknown fields, to report wrong JSON types like Kubernetes does, and to publish OpenAPI for
kubectl), and writing those schemas by hand would drift from Kubernetes. The client's model
classes carry each field's JSON name, type, description and whether it is required; this script
walks the models reachable from every kind in ``bosun.api.registry.RESOURCES`` and writes one
compact JSON that the runtime loads without importing ``kubernetes``.

What the client models do not carry is kept in small tables below (and checked against the
models, so a typo fails loudly): which string fields are ``resource.Quantity`` (they accept
numbers), which integers are int64 (only for the wording of decode errors), the strategic-merge
patch metadata (``x-kubernetes-patch-merge-key`` / ``-strategy``) and the Go package of each type.

Usage: ``.venv/bin/python tools/gen_schemas.py`` (rewrites the file; commit the result).
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from kubernetes.client import models  # noqa: E402

from bosun.api.registry import RESOURCES  # noqa: E402

OUT = ROOT / "src" / "bosun" / "api" / "schemas" / "types.json"

# Kinds served through subresources (not rows of the registry): group, version, kind, model.
EXTRA_KINDS = (
    ("autoscaling", "v1", "Scale", "V1Scale"),
    ("policy", "v1", "Eviction", "V1Eviction"),
    ("", "v1", "Binding", "V1Binding"),
)

# (model, attribute) pairs whose value is a resource.Quantity (string or number in JSON).
QUANTITY_FIELDS = {
    ("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
    ("V1VolumeResourceRequirements", "limits"), ("V1VolumeResourceRequirements", "requests"),
    ("V1PodSpec", "overhead"),
    ("V1NodeStatus", "capacity"), ("V1NodeStatus", "allocatable"),
    ("V1PersistentVolumeSpec", "capacity"),
    ("V1PersistentVolumeClaimStatus", "capacity"),
    ("V1PersistentVolumeClaimStatus", "allocated_resources"),
    ("V1ContainerStatus", "allocated_resources"),
    ("V1EmptyDirVolumeSource", "size_limit"),
    ("V1ResourceQuotaSpec", "hard"), ("V1ResourceQuotaStatus", "hard"), ("V1ResourceQuotaStatus", "used"),
    ("V1LimitRangeItem", "default"), ("V1LimitRangeItem", "default_request"), ("V1LimitRangeItem", "max"),
    ("V1LimitRangeItem", "min"), ("V1LimitRangeItem", "max_limit_request_ratio"),
    ("V1Overhead", "pod_fixed"),
    ("V1ResourceFieldSelector", "divisor"),
    ("V2MetricTarget", "average_value"), ("V2MetricTarget", "value"),
    ("V2MetricValueStatus", "average_value"), ("V2MetricValueStatus", "value"),
}

# JSON names of integer fields that are int64 in Go (the rest are int32). Only affects wording.
INT64_NAMES = {
    "activeDeadlineSeconds", "terminationGracePeriodSeconds", "deletionGracePeriodSeconds",
    "generation", "observedGeneration", "runAsUser", "runAsGroup", "fsGroup", "supplementalGroups",
    "startingDeadlineSeconds", "tolerationSeconds", "expirationSeconds", "defaultMode",
    "sizeBytes", "count",
}

# Strategic-merge patch metadata from the Go struct tags of k8s.io/api (model, attribute):
# (strategy, merge key or "").
PATCH_META = {
    ("V1PodSpec", "containers"): ("merge", "name"),
    ("V1PodSpec", "init_containers"): ("merge", "name"),
    ("V1PodSpec", "ephemeral_containers"): ("merge", "name"),
    ("V1PodSpec", "volumes"): ("merge,retainKeys", "name"),
    ("V1PodSpec", "image_pull_secrets"): ("merge", "name"),
    ("V1PodSpec", "host_aliases"): ("merge", "ip"),
    ("V1PodSpec", "topology_spread_constraints"): ("merge", "topologyKey"),
    ("V1PodSpec", "resource_claims"): ("merge,retainKeys", "name"),
    ("V1PodSpec", "scheduling_gates"): ("merge", "name"),
    ("V1Container", "ports"): ("merge", "containerPort"),
    ("V1Container", "env"): ("merge", "name"),
    ("V1Container", "volume_mounts"): ("merge", "mountPath"),
    ("V1Container", "volume_devices"): ("merge", "devicePath"),
    ("V1EphemeralContainer", "env"): ("merge", "name"),
    ("V1EphemeralContainer", "volume_mounts"): ("merge", "mountPath"),
    ("V1EphemeralContainer", "volume_devices"): ("merge", "devicePath"),
    ("V1PodStatus", "conditions"): ("merge", "type"),
    ("V1PodStatus", "pod_ips"): ("merge", "ip"),
    ("V1PodStatus", "host_ips"): ("merge", "ip"),
    ("V1PodStatus", "resource_claim_statuses"): ("merge,retainKeys", "name"),
    ("V1ServiceSpec", "ports"): ("merge", "port"),
    ("V1ServiceStatus", "conditions"): ("merge", "type"),
    ("V1ObjectMeta", "owner_references"): ("merge", "uid"),
    ("V1ObjectMeta", "finalizers"): ("merge", ""),
    ("V1NodeSpec", "pod_cidrs"): ("merge", ""),
    ("V1NodeStatus", "addresses"): ("merge", "type"),
    ("V1NodeStatus", "conditions"): ("merge", "type"),
    ("V1NamespaceStatus", "conditions"): ("merge", "type"),
    ("V1PersistentVolumeClaimStatus", "conditions"): ("merge", "type"),
    ("V1ServiceAccount", "secrets"): ("merge", "name"),
    ("V1DeploymentSpec", "strategy"): ("retainKeys", ""),
    ("V1DeploymentStatus", "conditions"): ("merge", "type"),
    ("V1ReplicaSetStatus", "conditions"): ("merge", "type"),
    ("V1StatefulSetStatus", "conditions"): ("merge", "type"),
    ("V1DaemonSetStatus", "conditions"): ("merge", "type"),
    ("V1JobStatus", "conditions"): ("merge", "type"),
    ("V2HorizontalPodAutoscalerStatus", "conditions"): ("merge", "type"),
    ("V1ValidatingWebhookConfiguration", "webhooks"): ("merge", "name"),
    ("V1MutatingWebhookConfiguration", "webhooks"): ("merge", "name"),
}

# Types that live in apimachinery's meta/v1 package rather than an API group's package.
META_TYPES = {
    "V1ObjectMeta", "V1ListMeta", "V1LabelSelector", "V1LabelSelectorRequirement",
    "V1ManagedFieldsEntry", "V1OwnerReference", "V1Condition", "V1Status", "V1StatusDetails",
    "V1StatusCause", "V1DeleteOptions", "V1Preconditions",
}

# Core types first reached from another group's kind (so the walk alone would misfile them).
CORE_TYPES = {"V1PodTemplateSpec", "V1TypedLocalObjectReference"}

_PKG = {
    "": "io.k8s.api.core.v1",
    "apps": "io.k8s.api.apps.v1",
    "batch": "io.k8s.api.batch.v1",
    "networking.k8s.io": "io.k8s.api.networking.v1",
    "autoscaling/v2": "io.k8s.api.autoscaling.v2",
    "autoscaling/v1": "io.k8s.api.autoscaling.v1",
    "coordination.k8s.io": "io.k8s.api.coordination.v1",
    "scheduling.k8s.io": "io.k8s.api.scheduling.v1",
    "storage.k8s.io": "io.k8s.api.storage.v1",
    "node.k8s.io": "io.k8s.api.node.v1",
    "policy": "io.k8s.api.policy.v1",
    "discovery.k8s.io": "io.k8s.api.discovery.v1",
    "rbac.authorization.k8s.io": "io.k8s.api.rbac.v1",
    "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1",
    "apiregistration.k8s.io": "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1",
    "certificates.k8s.io": "io.k8s.api.certificates.v1",
    "events.k8s.io": "io.k8s.api.events.v1",
    "admissionregistration.k8s.io": "io.k8s.api.admissionregistration.v1",
    "flowcontrol.apiserver.k8s.io": "io.k8s.api.flowcontrol.v1",
}
META_PKG = "io.k8s.apimachinery.pkg.apis.meta.v1"


def model_for(group: str, version: str, kind: str) -> str:
    # The client prefixes a kind two groups share with its group (CoreV1Event, EventsV1Event).
    prefix = (group.split(".")[0] or "core").capitalize()
    for name in (f"{version.capitalize()}{kind}", f"{prefix}{version.capitalize()}{kind}"):
        if hasattr(models, name):
            return name
    raise SystemExit(f"no client model for {group}/{version} {kind}")


def _field_info(cls: Any, attr: str) -> Any:
    fields = cls.model_fields
    return fields.get(attr) or fields.get(f"var{attr}") or fields.get(attr.lstrip("_"))


def _is_int_or_string(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    flat = set()
    for a in args:
        inner = typing.get_args(a)
        flat.add(inner[0] if inner else a)
    return int in flat and str in flat


def convert(type_str: str, cls: Any, attr: str, json_name: str) -> str:
    """The client's type string in our notation: string/int32/int64/bool/number/quantity/intstr/
    any/time, ``[]T`` for lists, ``{}T`` for string-keyed maps, model names for objects."""
    if type_str.startswith("List["):
        return "[]" + convert(type_str[5:-1], cls, attr, json_name)
    if type_str.startswith("Dict[str, "):
        return "{}" + convert(type_str[10:-1], cls, attr, json_name)
    if (cls.__name__, attr) in QUANTITY_FIELDS and type_str == "str":
        return "quantity"
    simple = {
        "str": "string", "bytes": "bytes", "bytearray": "bytes", "bool": "bool", "float": "number",
        "datetime": "time", "date": "time",
    }
    if type_str in simple:
        return simple[type_str]
    if type_str == "int":
        return "int64" if json_name in INT64_NAMES else "int32"
    if type_str == "object":
        info = _field_info(cls, attr)
        if info is not None and _is_int_or_string(info.annotation):
            return "intstr"
        return "any"
    if hasattr(models, type_str):
        return type_str
    raise SystemExit(f"unknown client type {type_str!r} at {cls.__name__}.{attr}")


def walk() -> dict[str, Any]:
    roots: list[tuple[str, str, str, str]] = [
        (r.group, r.version, r.kind, model_for(r.group, r.version, r.kind)) for r in RESOURCES
    ]
    roots += list(EXTRA_KINDS)
    # List kinds (e.g. DeploymentList) for list responses in OpenAPI.
    roots += [
        (g, v, f"{k}List", f"{m}List") for g, v, k, m in list(roots) if hasattr(models, f"{m}List")
    ]
    # Meta kinds every group version's OpenAPI refers to (errors, delete bodies).
    roots += [("", "v1", "Status", "V1Status"), ("", "v1", "DeleteOptions", "V1DeleteOptions")]
    types: dict[str, Any] = {}
    packages: dict[str, str] = {}
    seen_quantity: set[tuple[str, str]] = set()
    seen_patch: set[tuple[str, str]] = set()
    for group, version, _kind, root in roots:
        pkg_key = f"{group}/{version}" if f"{group}/{version}" in _PKG else group
        pkg = _PKG[pkg_key]
        stack = [root]
        while stack:
            name = stack.pop()
            if name in types:
                continue
            cls = getattr(models, name)
            packages[name] = (
                META_PKG if name in META_TYPES else _PKG[""] if name in CORE_TYPES else pkg
            )
            fields: dict[str, Any] = {}
            required: list[str] = []
            for attr, type_str in cls.openapi_types.items():
                json_name = cls.attribute_map[attr]
                t = convert(type_str, cls, attr, json_name)
                entry: dict[str, Any] = {"t": t}
                info = _field_info(cls, attr)
                if info is not None:
                    if info.description:
                        entry["d"] = info.description
                    if info.is_required():
                        required.append(json_name)
                if t == "quantity" or t.endswith("quantity"):
                    seen_quantity.add((name, attr))
                if (name, attr) in PATCH_META:
                    entry["ps"], entry["pk"] = PATCH_META[(name, attr)]
                    seen_patch.add((name, attr))
                fields[json_name] = entry
                base = t.lstrip("[]{}")
                if hasattr(models, base) and base not in types:
                    stack.append(base)
            doc = (cls.__doc__ or "").strip().split("\n\n")[0].strip()
            types[name] = {"fields": fields, "required": required, "doc": doc}
    for name, attr in QUANTITY_FIELDS:
        if hasattr(models, name) and name in types and (name, attr) not in seen_quantity:
            raise SystemExit(f"quantity table names a missing field {name}.{attr}")
    missing = set(PATCH_META) - seen_patch
    if missing:
        raise SystemExit(f"patch table names fields not reached: {sorted(missing)}")
    kinds = {f"{g}/{v}/{k}": m for g, v, k, m in roots}
    return {
        "source": f"kubernetes python client {_client_version()}",
        "kinds": kinds,
        "packages": packages,
        "types": types,
    }


def _client_version() -> str:
    import kubernetes

    return str(getattr(kubernetes, "__version__", "unknown"))


def main() -> None:
    data = walk()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data['kinds'])} kinds, {len(data['types'])} types, "
          f"{OUT.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
