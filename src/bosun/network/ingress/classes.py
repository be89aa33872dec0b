"""Which Ingresses are Bosun's: read alike by the node agents (what to route) and the
control plane (whose status to fill), so both always agree.

An Ingress is ours when its ``spec.ingressClassName`` (or the older
``kubernetes.io/ingress.class`` annotation) names an IngressClass whose controller is
:data:`CONTROLLER`; one naming no class is ours when the cluster's default class (annotation
``ingressclass.kubernetes.io/is-default-class: "true"``) is ours, or when no class is marked
default at all. Ingresses of another controller are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def is_ours(ing: Obj, classes: Iterable[Obj]) -> bool:
    by_name = {(c.get("metadata") or {}).get("name"): c for c in classes}
    name = class_name(ing)
    if name:
        cls = by_name.get(name)
        return cls is not None and (cls.get("spec") or {}).get("controller") == CONTROLLER
    defaults = [c for c in by_name.values()
                if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_ANNOTATION) == "true"]
    return not defaults or any((c.get("spec") or {}).get("controller") == CONTROLLER for c in defaults)
