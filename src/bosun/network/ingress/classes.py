"""Which Ingresses are Bosun's: read alike by the node agents (what to route) and the
control plane (whose status to fill), so both always agree.

An Ingress is ours when its ``spec.ingressClassName`` (or the older
``kubernetes.io/ingress.class`` annotation) names an IngressClass whose controller is
:data:`CONTROLLER`; one naming no class is ours when the cluster's default class (annotation
``ingressclass.kubernetes.io/is-default-class: "true"``) is ours, or when no class is marked
default at all. Ingresses of another controller are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Obj = dict[str, Any]
CONTROLLER = "bosun.dev/ingress-nginx"
CLASS_NAME = "bosun"
DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def default_class() -> Obj:
    """The IngressClass the control plane makes when missing, marked as the default."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_ANNOTATION: "true"}},
            "spec": {"controller": CONTROLLER}}


def class_name(ing: Obj) -> str:
    spec = ing.get("spec") or {}
    annotations = (ing.get("metadata") or {}).get("annotations") or {}
    return str(spec.get("ingressClassName") or annotations.get(LEGACY_CLASS_ANNOTATION) or "")


def ours_filter(classes: Iterable[Obj]) -> Callable[[Obj], bool]:
    """Whether an Ingress is ours, given the cluster's IngressClasses (looked at once, for many)."""
    mine: set[str] = set()
    defaults: list[bool] = []  # of each class marked default: is it ours
    for c in classes:
        is_mine = (c.get("spec") or {}).get("controller") == CONTROLLER
        if is_mine:
            mine.add(str((c.get("metadata") or {}).get("name") or ""))
        if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_ANNOTATION) == "true":
            defaults.append(is_mine)
    classless = not defaults or any(defaults)

    def ours(ing: Obj) -> bool:
        name = class_name(ing)
        return name in mine if name else classless

    return ours


def is_ours(ing: Obj, classes: Iterable[Obj]) -> bool:
    return ours_filter(classes)(ing)
