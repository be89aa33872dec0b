"""OpenAPI definitions of custom resources, from their CRDs' schemas.

The built-in kinds' definitions come from the generated ``schemas/types.json``; a custom
resource brings its version's ``openAPIV3Schema`` (:class:`bosun.api.registry.Custom`), to
which kube-apiserver adds ``apiVersion``, ``kind`` and ``metadata`` and the group-version-kind
that kubectl finds it by. Its list kind is made here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bosun.api.registry import Resource

Ref = Callable[[str], dict[str, Any]]


def custom_names(r: Resource) -> tuple[str, str]:
    """kube-apiserver's definition names for a custom kind and its list: the group reversed,
    then the version and kind (``com.example.v1.CronTab``)."""
    prefix = ".".join([*reversed(r.group.split(".")), r.version])
    return f"{prefix}.{r.kind}", f"{prefix}.{r.list_kind_name}"


def custom_definitions(r: Resource, schema: dict[str, Any], ref: Ref, wrap_refs: bool, object_meta: str,
                       list_meta: str) -> dict[str, Any]:
    """The definitions of a custom kind and its list (``ref`` makes a ``$ref`` to a definition
    name; ``wrap_refs``: v3 puts a ref in ``allOf`` so that a description may sit beside it)."""
    name, list_name = custom_names(r)
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}

    def meta(model: str) -> dict[str, Any]:
        return {"allOf": [ref(model)]} if wrap_refs else ref(model)

    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this "
                                                            "representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource "
                                                      "this object represents."}
    props["metadata"] = meta(object_meta)
    schema["x-kubernetes-group-version-kind"] = [gvk]
    listed = {
        "type": "object", "required": ["items"],
        "description": f"{r.list_kind_name} is a list of {r.kind}",
        "properties": {
            "apiVersion": props["apiVersion"], "kind": props["kind"],
            "items": {"type": "array", "items": ref(name)},
            "metadata": meta(list_meta),
        },
        "x-kubernetes-group-version-kind": [dict(gvk, kind=r.list_kind_name)],
    }
    return {name: schema, list_name: listed}
