"""Defaults per kind, applied in place as Kubernetes' defaulting does.

Each kind's defaulter is named by its strategy (:mod:`bosun.api.strategy`); the modules of
this package hold the defaulters. The API server applies them on every create and update
body (after patches) before validation, so stored objects always carry the values users
see from ``kubectl get -o yaml`` on a real cluster. Garbage is left alone for validation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bosun.api.registry import Resource


def apply_defaults(resource: Resource, obj: dict[str, Any]) -> None:
    """Fill what the user left out. Never raises: malformed parts are skipped, not fixed."""
    resource.strategy.default(resource, obj)


def apply_update_defaults(resource: Resource, new: dict[str, Any], old: dict[str, Any]) -> None:
    """Keep values the server allocated when an update body leaves them out.

    A ``kubectl replace`` of a Service manifest carries no clusterIP or nodePorts, and one of a
    Job carries no generated selector; Kubernetes copies them from the stored object instead
    of treating the omission as a change. Call before :func:`apply_defaults` and validation.
    """
    if not isinstance(new, dict) or not isinstance(old, dict):
        return
    try:
        resource.strategy.prepare_for_update(new, old)
    except Exception:
        return  # malformed input: validation reports it


__all__ = ["apply_defaults", "apply_update_defaults"]
