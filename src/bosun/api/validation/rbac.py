"""rbac.authorization.k8s.io/v1: what Kubernetes' RBAC validation accepts.

Role names are path segments, not DNS names (``system:node-proxier`` is a valid name), and
a binding's roleRef never changes once made: to point a binding elsewhere users delete and
recreate it, so nobody's grant silently changes meaning under an existing name.
"""

from __future__ import annotations

from typing import Any

from bosun.api.errors import FieldError, invalid, not_supported, required
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import validate_object_meta

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ["Group", "ServiceAccount", "User"]


def path_segment_name(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def _rules(c: Checker, obj: dict[str, Any], namespaced: bool) -> None:
    for i, r in c.objects(obj, "rules", "rules"):
        path = index("rules", i)
        verbs = c.strings(r, "verbs", child(path, "verbs"))
        if not verbs:
            c.add(required(child(path, "verbs"), "verbs must contain at least one value"))
        urls = c.strings(r, "nonResourceURLs", child(path, "nonResourceURLs"))
        groups = c.strings(r, "apiGroups", child(path, "apiGroups"))
        resources = c.strings(r, "resources", child(path, "resources"))
        names = c.strings(r, "resourceNames", child(path, "resourceNames"))
        if urls:
            if namespaced:
                c.add(invalid(child(path, "nonResourceURLs"), urls,
                              "namespaced rules cannot apply to non-resource URLs"))
            if groups or resources or names:
                c.add(invalid(child(path, "nonResourceURLs"), urls,
                              "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not groups:
            c.add(required(child(path, "apiGroups"), "resource rules must supply at least one api group"))
        if not resources:
            c.add(required(child(path, "resources"), "resource rules must supply at least one resource"))


def validate_role(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, path_segment_name, namespaced=True)
    _rules(c, obj, True)


def validate_cluster_role(c: Checker, obj: dict[str, Any]) -> None:
    validate_object_meta(c, obj, path_segment_name, namespaced=False)
    _rules(c, obj, False)
    agg = c.obj(obj, "aggregationRule", "aggregationRule")
    if agg is not None:
        c.objects(agg, "clusterRoleSelectors", "aggregationRule.clusterRoleSelectors")  # type checks


def _binding(c: Checker, obj: dict[str, Any], cluster: bool) -> None:
    validate_object_meta(c, obj, path_segment_name, namespaced=not cluster)
    ref = c.obj(obj, "roleRef", "roleRef")
    if ref is None:
        c.add(required("roleRef.name"))
    else:
        if ref.get("apiGroup") != GROUP:
            c.add(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
        kinds = ["ClusterRole"] if cluster else ["ClusterRole", "Role"]
        if ref.get("kind") not in kinds:
            c.add(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
        name = c.text(ref, "name", "roleRef.name")
        if not name:
            c.add(required("roleRef.name"))
        else:
            for msg in path_segment_name(name):
                c.add(invalid("roleRef.name", name, msg))
    for i, s in c.objects(obj, "subjects", "subjects"):
        path = index("subjects", i)
        kind = s.get("kind")
        if kind not in SUBJECT_KINDS:
            c.add(not_supported(child(path, "kind"), kind or "", SUBJECT_KINDS))
        if not c.text(s, "name", child(path, "name")):
            c.add(required(child(path, "name")))
        if kind in ("User", "Group") and s.get("apiGroup") != GROUP:
            c.add(not_supported(child(path, "apiGroup"), s.get("apiGroup") or "", [GROUP]))
        if kind == "ServiceAccount":
            if s.get("apiGroup"):
                c.add(not_supported(child(path, "apiGroup"), s.get("apiGroup"), [""]))
            if cluster and not s.get("namespace"):
                c.add(required(child(path, "namespace")))


def validate_role_binding(c: Checker, obj: dict[str, Any]) -> None:
    _binding(c, obj, False)


def validate_cluster_role_binding(c: Checker, obj: dict[str, Any]) -> None:
    _binding(c, obj, True)


def validate_binding_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    if new.get("roleRef") != old.get("roleRef"):
        return [invalid("roleRef", new.get("roleRef"), "cannot change roleRef")]
    return []
