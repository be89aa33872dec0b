"""Warnings about a pod spec that is accepted but probably not what its author meant.

kube-apiserver answers such writes with ``Warning`` headers (kubectl prints them as
``Warning: ...``) rather than refusing them: deprecated node labels that new nodes no
longer carry (in node selectors, node affinity and topology spread constraints), annotations
that no longer do anything, volume types that were removed, volume files that overwrite each
other (:mod:`bosun.api.validation.volumepaths`), repeated host aliases and pull secrets, a
negative grace period that is treated as 1 s, a null label selector that selects nothing, and
the per-container ones (:mod:`bosun.api.validation.containerwarnings`). The wording is
upstream's (``pkg/api/pod/warnings.go``), so users find it when they search for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bosun.api.validation.containerwarnings import BYTE_RESOURCES, container_warnings, fractional
from bosun.api.validation.volumepaths import overlapping_paths

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
    "scheduler.alpha.kubernetes.io/critical-pod": 'non-functional in v1.16+; use the "priorityClassName" field instead',
    "security.alpha.kubernetes.io/sysctls": 'non-functional in v1.11+; use the "sysctls" field instead',
    "security.alpha.kubernetes.io/unsafe-sysctls": 'non-functional in v1.11+; use the "sysctls" field instead',
}
SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
REMOVED_VOLUMES: dict[str, str] = {
    "gitRepo": "deprecated in v1.11",
    "photonPersistentDisk": "deprecated in v1.11, non-functional in v1.16+",
    "scaleIO": "deprecated in v1.16, non-functional in v1.22+",
    "flocker": "deprecated in v1.22, non-functional in v1.25+",
    "storageOS": "deprecated in v1.22, non-functional in v1.25+",
    "quobyte": "deprecated in v1.22, non-functional in v1.25+",
    "glusterfs": "deprecated in v1.25, non-functional in v1.26+",
    "cephfs": "deprecated in v1.28, non-functional in v1.31+",
    "rbd": "deprecated in v1.28, non-functional in v1.31+",
}


def _dict(v: object) -> Obj:
    return v if isinstance(v, dict) else {}


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def _label_message(key: object) -> str | None:
    if not isinstance(key, str) or key not in DEPRECATED_NODE_LABELS:
        return None
    since, use = DEPRECATED_NODE_LABELS[key]
    return f'deprecated since {since}; use "{use}" instead'


def _term_warnings(term: object, path: str) -> list[str]:
    """Upstream's GetWarningsForNodeSelectorTerm: deprecated labels as expression keys."""
    out = []
    for j, expr in enumerate(_list(_dict(term).get("matchExpressions"))):
        key = _dict(expr).get("key")
        msg = _label_message(key)
        if msg:
            out.append(f"{path}.matchExpressions[{j}].key: {key} is {msg}")
    return out


def _node_label_warnings(spec: Obj, prefix: str) -> list[str]:
    out = [f"{prefix}spec.nodeSelector[{k}]: {msg}" for k in _dict(spec.get("nodeSelector"))
           if (msg := _label_message(k))]
    node = _dict(_dict(spec.get("affinity")).get("nodeAffinity"))
    path = f"{prefix}spec.affinity.nodeAffinity"
    required = _dict(node.get("requiredDuringSchedulingIgnoredDuringExecution"))
    for i, term in enumerate(_list(required.get("nodeSelectorTerms"))):
        out += _term_warnings(term, f"{path}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]")
    for i, pref in enumerate(_list(node.get("preferredDuringSchedulingIgnoredDuringExecution"))):
        out += _term_warnings(_dict(pref).get("preference"),
                              f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference")
    for i, constraint in enumerate(_list(spec.get("topologySpreadConstraints"))):
        key = _dict(constraint).get("topologyKey")
        msg = _label_message(key)
        if msg:
            out.append(f"{prefix}spec.topologySpreadConstraints[{i}].topologyKey: {key} is {msg}")
        if isinstance(constraint, dict) and constraint.get("labelSelector") is None:
            out.append(f"{prefix}spec.topologySpreadConstraints[{i}].labelSelector: "
                       "a null labelSelector results in matching no pod")
    return out


def _duplicates(items: list[Any], field: str, path: str) -> list[str]:
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        value = str(_dict(item).get(field) or "")
        if value in seen:
            out.append(f'{path}[{i}].{field}: duplicate {"ip" if field == "ip" else "name"} "{value}"')
        seen.add(value)
    return out


def _affinity_term_warnings(spec: Obj, prefix: str) -> list[str]:
    out = []
    affinity = _dict(spec.get("affinity"))
    for kind in ("podAffinity", "podAntiAffinity"):
        part = _dict(affinity.get(kind))
        path = f"{prefix}spec.affinity.{kind}"
        for i, term in enumerate(_list(part.get("requiredDuringSchedulingIgnoredDuringExecution"))):
            if isinstance(term, dict) and term.get("labelSelector") is None:
                out.append(f"{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}].labelSelector: "
                           "a null labelSelector results in matching no pod")
        for i, weighted in enumerate(_list(part.get("preferredDuringSchedulingIgnoredDuringExecution"))):
            term = _dict(weighted).get("podAffinityTerm")
            if isinstance(term, dict) and term.get("labelSelector") is None:
                out.append(f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}].podAffinityTerm."
                           "labelSelector: a null labelSelector results in matching no pod")
    return out


def _removed_volumes(spec: Obj, prefix: str) -> list[str]:
    out = []
    for i, volume in enumerate(_list(spec.get("volumes"))):
        present = {k.lower() for k in _dict(volume)}
        out += [f"{prefix}spec.volumes[{i}].{kind}: {why}" for kind, why in REMOVED_VOLUMES.items()
                if kind.lower() in present]
    return out


def pod_warnings(meta: Obj, spec: Obj, prefix: str = "") -> list[str]:
    """Warnings for one pod (``prefix`` ``""``) or pod template (``spec.template.``), in
    upstream's order."""
    out = _node_label_warnings(spec, prefix)
    annotations = _dict(meta.get("annotations"))
    out += [f"{prefix}metadata.annotations[{key}]: {why}" for key, why in DEPRECATED_ANNOTATIONS.items()
            if key in annotations]
    out += _removed_volumes(spec, prefix)
    out += overlapping_paths(_list(spec.get("volumes")))
    aliases, pulls = _list(spec.get("hostAliases")), _list(spec.get("imagePullSecrets"))
    out += _duplicates(aliases, "ip", f"{prefix}spec.hostAliases")
    out += _duplicates(pulls, "name", f"{prefix}spec.imagePullSecrets")
    out += [f'{prefix}spec.imagePullSecrets[{i}].name: invalid empty name ""'
            for i, ref in enumerate(pulls) if not _dict(ref).get("name")]
    for res in BYTE_RESOURCES:
        value = _dict(spec.get("overhead")).get(res)
        shown = fractional(value) if value is not None else None
        if shown is not None:
            out.append(f'{prefix}spec.overhead[{res}]: fractional byte value "{shown}" is invalid, must be an integer')
    if _dict(spec.get("securityContext")).get("seccompProfile") is None and SECCOMP_POD in annotations:
        out.append(f'{prefix}metadata.annotations[{SECCOMP_POD}]: non-functional in v1.27+; '
                   'use the "seccompProfile" field instead')
    out += container_warnings(meta, spec, prefix)
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace < 0:
        out.append(f"{prefix}spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid "
                   "and will be treated as 1")
    out += _affinity_term_warnings(spec, prefix)
    return out

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
