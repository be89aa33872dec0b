"""Warnings about a pod spec that is accepted but probably not what its author meant.

kube-apiserver answers such writes with ``Warning`` headers (kubectl prints them as
``Warning: ...``) rather than refusing them: deprecated node labels that new nodes no
longer carry, volume types that were removed, a negative grace period that is treated as
1 s, a fractional byte count. The wording is upstream's (``pkg/api/pod/warnings.go``), so
users find it when they search for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bosun.api.quantity import parse_quantity

Obj = dict[str, Any]

# label -> (deprecated since, what to use instead)
DEPRECATED_NODE_LABELS: dict[str, tuple[str, str]] = {
    "beta.kubernetes.io/arch": ("v1.14", "kubernetes.io/arch"),
    "beta.kubernetes.io/os": ("v1.14", "kubernetes.io/os"),
    "failure-domain.beta.kubernetes.io/region": ("v1.17", "topology.kubernetes.io/region"),
    "failure-domain.beta.kubernetes.io/zone": ("v1.17", "topology.kubernetes.io/zone"),
    "beta.kubernetes.io/instance-type": ("v1.17", "node.kubernetes.io/instance-type"),
}
DEPRECATED_ANNOTATIONS: dict[str, str] = {
    "scheduler.alpha.kubernetes.io/critical-pod": "non-functional in v1.16+",
    "seccomp.security.alpha.kubernetes.io/pod":
        'non-functional in v1.27+; use the "seccompProfile" field instead',
}
REMOVED_VOLUMES: dict[str, str] = {
    "gitRepo": "deprecated in v1.11",
    "photonPersistentDisk": "deprecated in v1.11, non-functional in v1.16+",
    "scaleIO": "deprecated in v1.16, non-functional in v1.22+",
    "flocker": "deprecated in v1.22, non-functional in v1.25+",
    "storageos": "deprecated in v1.22, non-functional in v1.25+",
    "quobyte": "deprecated in v1.22, non-functional in v1.25+",
    "glusterfs": "deprecated in v1.25, non-functional in v1.26+",
    "cephfs": "deprecated in v1.28, non-functional in v1.31+",
    "rbd": "deprecated in v1.28, non-functional in v1.31+",
}


def _dict(v: object) -> Obj:
    return v if isinstance(v, dict) else {}


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def pod_warnings(meta: Obj, spec: Obj, prefix: str = "") -> list[str]:
    """Warnings for one pod (``prefix`` ``""``) or pod template (``spec.template.``)."""
    out: list[str] = []
    for key, why in DEPRECATED_ANNOTATIONS.items():
        if key in _dict(meta.get("annotations")):
            out.append(f"{prefix}metadata.annotations[{key}]: {why}")
    for key in _dict(spec.get("nodeSelector")):
        if key in DEPRECATED_NODE_LABELS:
            since, use = DEPRECATED_NODE_LABELS[key]
            out.append(f'{prefix}spec.nodeSelector[{key}]: deprecated since {since}; use "{use}" instead')
    required = _dict(_dict(_dict(spec.get("affinity")).get("nodeAffinity"))
                     .get("requiredDuringSchedulingIgnoredDuringExecution"))
    for i, term in enumerate(_list(required.get("nodeSelectorTerms"))):
        for j, expr in enumerate(_list(_dict(term).get("matchExpressions"))):
            expr_key = _dict(expr).get("key")
            if isinstance(expr_key, str) and expr_key in DEPRECATED_NODE_LABELS:
                since, use = DEPRECATED_NODE_LABELS[expr_key]
                out.append(f"{prefix}spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                           f".nodeSelectorTerms[{i}].matchExpressions[{j}].key: {expr_key} is deprecated since "
                           f'{since}; use "{use}" instead')
    for i, volume in enumerate(_list(spec.get("volumes"))):
        for kind, why in REMOVED_VOLUMES.items():
            if kind in _dict(volume):
                out.append(f"{prefix}spec.volumes[{i}].{kind}: {why}")
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace < 0:
        out.append(f"{prefix}spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid "
                   "and will be treated as 1")
    for field in ("initContainers", "containers"):
        for i, ctr in enumerate(_list(spec.get(field))):
            resources = _dict(_dict(ctr).get("resources"))
            for part in ("limits", "requests"):
                for res in ("memory", "ephemeral-storage"):
                    value = _dict(resources.get(part)).get(res)
                    if value is not None and _fractional(value):
                        out.append(f'{prefix}spec.{field}[{i}].resources.{part}[{res}]: fractional byte value '
                                   f'"{value}" is invalid, must be an integer')
    return out


def _fractional(value: object) -> bool:
    try:
        q = parse_quantity(value)  # type: ignore[arg-type]
    except ValueError:
        return False  # validation reports it
    return q != q.to_integral_value()


def for_pod(obj: Obj) -> list[str]:
    return pod_warnings(_dict(obj.get("metadata")), _dict(obj.get("spec")))


def for_template(*path: str) -> Callable[[Obj], list[str]]:
    """Warnings for the pod template at ``path`` (``"spec", "template"`` for a Deployment)."""
    prefix = ".".join(path) + "."

    def warn(obj: Obj) -> list[str]:
        template: Obj = obj
        for part in path:
            template = _dict(template.get(part))
        return pod_warnings(_dict(template.get("metadata")), _dict(template.get("spec")), prefix)

    return warn
