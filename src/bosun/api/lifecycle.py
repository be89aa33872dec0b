"""Server-owned metadata across an object's life: what an update may not change, when a write
is a no-op, and how a delete becomes a mark (finalizers, grace period) or a removal.

Generic for every kind; what is special about a kind comes from its strategy.
"""

from __future__ import annotations

from typing import Any

from bosun.api.objects import meta
from bosun.api.registry import Resource

_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


def merge_for_update(
    res: Resource, old: dict[str, Any], new: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """Apply the status/spec split and keep server-owned metadata from the stored object."""
    if subresource in ("scale", "binding", "finalize"):
        return new  # built by the subresource handler from the stored object itself
    if subresource == "status":
        # Shallow: only metadata (resourceVersion is set on it) and status (new's own)
        # differ from the stored object, whose other parts are never modified in place.
        out = dict(old)
        out["metadata"] = dict(old["metadata"])
        if "status" in new:
            out["status"] = new["status"]
        else:
            out.pop("status", None)
        return out
    nm = meta(new)
    om = old["metadata"]
    for k in _SERVER_META:
        if k in om:
            nm[k] = om[k]
        else:
            nm.pop(k, None)
    nm["name"] = om["name"]
    if res.namespaced:
        nm["namespace"] = om.get("namespace")
    # Who owns which field is the server's record: what a client sends is not taken.
    if "managedFields" in om:
        nm["managedFields"] = om["managedFields"]
    else:
        nm.pop("managedFields", None)
    new["apiVersion"] = res.api_version
    new["kind"] = res.kind
    if "status" in res.subresources and subresource is None:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if om.get("deletionTimestamp"):
        # Finalizers may only be removed from an object being deleted, never added.
        old_f = set(om.get("finalizers") or [])
        nm["finalizers"] = [f for f in (nm.get("finalizers") or []) if f in old_f] or None
        if nm["finalizers"] is None:
            nm.pop("finalizers")
    return new


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    am = {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}
    bm = {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}
    if am != bm:
        return False
    return {k: v for k, v in a.items() if k != "metadata"} == {k: v for k, v in b.items() if k != "metadata"}


def deletion_due(res: Resource, obj: dict[str, Any]) -> bool:
    """An object whose finalizers are all gone is removed, unless its kind still holds it
    (a pod in its grace period on a node: the node agent deletes it once its containers
    are stopped)."""
    m = obj["metadata"]
    if not m.get("deletionTimestamp") or m.get("finalizers"):
        return False
    return not res.strategy.holds_deletion(obj)


def mark_for_deletion(res: Resource, obj: dict[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
    """The object to write instead of deleting it now, or None to delete now: the finalizer
    the propagation policy asks for is added, and the kind's strategy decides the rest."""
    finalizers = list(obj["metadata"].get("finalizers") or [])
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is True:
        policy = "Orphan"
    if policy == "Orphan" and "orphan" not in finalizers:
        finalizers.append("orphan")
    elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
        finalizers.append("foregroundDeletion")
    return res.strategy.mark_for_deletion(obj, finalizers, options)
