"""The registry rows a CustomResourceDefinition makes, and its conditions.

Apart from :mod:`bosun.api.crd.controller` (which serves them in the API server) because
components outside the server need the same rows: the garbage collector, the namespace
controller and the CRD finalizer follow custom kinds through the client with them.
"""

from __future__ import annotations

from typing import Any

from bosun.api.crd.version import CustomVersion
from bosun.api.registry import Resource

_VERBS: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
Obj = dict[str, Any]


def obj_dict(v: Any) -> Obj:
    """``v`` if it is a mapping, else an empty one (CRDs are user input: any field may be anything)."""
    return v if isinstance(v, dict) else {}


def condition(crd: Obj, typ: str) -> Obj:
    for c in obj_dict(crd.get("status")).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == typ:
            return c
    return {}


def rows_of(crd: Obj) -> tuple[Resource, ...]:
    """The registry rows a CRD's served versions make."""
    spec = obj_dict(crd.get("spec"))
    names = obj_dict(spec.get("names"))
    group, kind, plural = str(spec.get("group")), str(names.get("kind")), str(names.get("plural"))
    verbs = _VERBS
    if obj_dict(crd.get("metadata")).get("deletionTimestamp"):
        verbs = tuple(v for v in _VERBS if v != "create")  # its objects are being deleted
    rows = []
    for v in spec.get("versions") or []:
        if not isinstance(v, dict) or v.get("served") is not True:
            continue
        subs = obj_dict(v.get("subresources"))
        strategy = CustomVersion(obj_dict(obj_dict(v.get("schema")).get("openAPIV3Schema")), v)
        rows.append(Resource(
            group, str(v.get("name")), kind, plural, spec.get("scope") == "Namespaced",
            tuple(names.get("shortNames") or ()), tuple(names.get("categories") or ()),
            subresources=tuple(s for s in ("status", "scale") if s in subs),
            list_kind=str(names.get("listKind") or f"{kind}List"), strategy=strategy, custom=strategy, verbs=verbs,
            deprecation=_deprecation(group, kind, v),
        ))
    return tuple(rows)


def _deprecation(group: str, kind: str, version: Obj) -> str | None:
    """A ``deprecated: true`` version's warning: its ``deprecationWarning``, or upstream's default."""
    if version.get("deprecated") is not True:
        return None
    custom = version.get("deprecationWarning")
    return str(custom) if isinstance(custom, str) else f"{group}/{version.get('name')} {kind} is deprecated"


def is_established(crd: Obj) -> bool:
    return condition(crd, "Established").get("status") == "True"
