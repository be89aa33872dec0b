"""deploy.placement as scheduling rules: constraints as required node affinity, preferences
(``spread: node.labels.zone``) as topology spread, max_replicas_per_node as anti-affinity.

Swarm's node attributes map to the labels every Bosun node carries: ``node.hostname`` to
``kubernetes.io/hostname``, ``node.role`` to ``node-role.kubernetes.io/control-plane``,
``node.platform.os/arch`` to ``kubernetes.io/os/arch``, ``node.labels.X`` to the label X.
"""

from __future__ import annotations

import re

from bosun.compose.errors import ComposeError
from bosun.compose.translate.context import JSON, Service
from bosun.membership import MANAGER_LABEL

MAX_PER_NODE_ANNOTATION = "bosun.io/max-replicas-per-node"
_EXPR = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(\S.*?)\s*$")
_ATTRIBUTES = {"node.hostname": "kubernetes.io/hostname", "node.platform.os": "kubernetes.io/os",
               "node.platform.arch": "kubernetes.io/arch"}


def requirement(expr: str, where: str) -> tuple[str, JSON]:
    """One constraint as ``("label"|"field", requirement)``; a bad one is refused by name."""
    m = _EXPR.match(expr)
    if m is None:
        raise ComposeError(f"{where}: invalid constraint expression {expr!r}: want ATTRIBUTE==VALUE or "
                           "ATTRIBUTE!=VALUE")
    attr, op, value = m.group(1), m.group(2), m.group(3)
    equal = op == "=="
    if attr == "node.role":
        if value not in ("manager", "worker"):
            raise ComposeError(f"{where}: invalid constraint {expr!r}: node.role is manager or worker")
        exists = (value == "manager") == equal
        return "label", {"key": MANAGER_LABEL, "operator": "Exists" if exists else "DoesNotExist"}
    if attr == "node.id":
        return "field", {"key": "metadata.name", "operator": "In" if equal else "NotIn", "values": [value]}
    if attr.startswith("node.labels."):
        key = attr.removeprefix("node.labels.")
    elif attr in _ATTRIBUTES:
        key = _ATTRIBUTES[attr]
    else:
        raise ComposeError(f"{where}: invalid constraint {expr!r}: unknown attribute {attr!r} (node.labels.*, "
                           "node.role, node.hostname, node.id, node.platform.os, node.platform.arch)")
    return "label", {"key": key, "operator": "In" if equal else "NotIn", "values": [value]}


def node_affinity(constraints: list[str], where: str) -> JSON | None:
    labels: list[JSON] = []
    fields: list[JSON] = []
    for expr in constraints:
        kind, req = requirement(str(expr), where)
        (labels if kind == "label" else fields).append(req)
    if not labels and not fields:
        return None
    term: JSON = {}
    if labels:
        term["matchExpressions"] = labels
    if fields:
        term["matchFields"] = fields
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}


class Placement:
    fields: frozenset[str] = frozenset()  # reads deploy.placement only

    def apply(self, svc: Service) -> list[JSON]:
        placement = dict(svc.deploy.get("placement") or {})
        where = f"{svc.where}.deploy.placement.constraints"
        affinity: JSON = {}
        nodes = node_affinity([str(c) for c in placement.get("constraints") or []], where)
        if nodes:
            affinity["nodeAffinity"] = nodes
        spread: list[JSON] = []
        for pref in placement.get("preferences") or []:
            attr = str((pref or {}).get("spread") or "")
            key = attr.removeprefix("node.labels.") if attr.startswith("node.labels.") else _ATTRIBUTES.get(attr)
            if not key:
                svc.warn("deploy.placement.preferences", f"spread over {attr!r} is not supported (node.labels.* "
                                                         "or node.hostname)")
                continue
            spread.append({"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
                           "labelSelector": {"matchLabels": svc.selector()}})
        per_node = placement.get("max_replicas_per_node")
        if per_node is not None:
            if int(per_node) == 1:
                affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": svc.selector()}}]}
            else:
                spread.append({"maxSkew": int(per_node), "topologyKey": "kubernetes.io/hostname",
                               "whenUnsatisfiable": "DoNotSchedule",
                               "labelSelector": {"matchLabels": svc.selector()}})
                svc.warn("deploy.placement.max_replicas_per_node",
                         f"{per_node} is kept as a spread of at most {per_node} more tasks on one node than on "
                         "another, not as a hard cap")
            svc.workload_annotations[MAX_PER_NODE_ANNOTATION] = str(per_node)
        if affinity:
            svc.pod["affinity"] = affinity
        if spread:
            svc.pod["topologySpreadConstraints"] = spread
        return []
