"""Which nodes a DaemonSet's pod belongs on: node selector, required node affinity and
taints/tolerations, judged the way Kubernetes' DaemonSet controller judges them.

The DaemonSet controller decides placement itself (the scheduler only binds the pod to the
node named in its affinity), so it needs its own copy of these predicates.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

# Tolerations Kubernetes adds to every daemon pod, so that daemons keep running (or get
# placed) on nodes that are cordoned, under pressure or not ready.
_DAEMON_TOLERATIONS: list[Obj] = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
]
_HOST_NETWORK_TOLERATION: Obj = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                                 "effect": "NoSchedule"}


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """The pod's tolerations plus the ones Kubernetes adds to daemon pods (no duplicates)."""
    out = [dict(t) for t in pod_spec.get("tolerations") or []]
    extra = list(_DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        extra.append(_HOST_NETWORK_TOLERATION)
    for t in extra:
        if not any(_same_toleration(t, have) for have in out):
            out.append(dict(t))
    return out


def _same_toleration(a: Obj, b: Obj) -> bool:
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "operator", "value", "effect"))


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def _untolerated(taints: list[Obj], tolerations: list[Obj], effects: tuple[str, ...]) -> list[Obj]:
    return [t for t in taints if t.get("effect") in effects and not any(tolerates(x, t) for x in tolerations)]


def _expression_matches(expr: Obj, value: str | None) -> bool:
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    """All of a node selector term's requirements hold (an empty term matches nothing)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    for e in exprs:
        if not _expression_matches(e, labels.get(e.get("key", ""))):
            return False
    for f in fields:
        value = meta.get("name") if f.get("key") == "metadata.name" else None
        if not _expression_matches(f, value):
            return False
    return True


def node_matches(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector and required node affinity (any term) both hold for the node."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def placement(pod_spec: Obj, node: Obj) -> tuple[bool, bool]:
    """(should_run, should_continue_running) of a daemon pod on ``node``.

    A new pod needs every NoSchedule and NoExecute taint tolerated; a running one is
    only pushed off by NoExecute taints, as in Kubernetes.
    """
    if not node_matches(pod_spec, node):
        return False, False
    taints = list((node.get("spec") or {}).get("taints") or [])
    tolerations = daemon_tolerations(pod_spec)
    should_continue = not _untolerated(taints, tolerations, ("NoExecute",))
    should_run = should_continue and not _untolerated(taints, tolerations, ("NoSchedule",))
    return should_run, should_continue


def pin_to_node(pod_spec: Obj, node_name: str) -> Obj:
    """A copy of the pod spec whose required node affinity selects only ``node_name`` and
    that carries the daemon tolerations (Kubernetes' way: the scheduler then binds it)."""
    spec = copy.deepcopy(pod_spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    spec["tolerations"] = daemon_tolerations(spec)
    return spec


def target_node(pod: Obj) -> str | None:
    """The node a pod is on, or the single node its affinity pins it to while unbound."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution")) or {}
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    fields = terms[0].get("matchFields") or []
    for f in fields:
        values = f.get("values") or []
        if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(values) == 1:
            return str(values[0])
    return None
