"""Served versions of a kind that is stored in another version (autoscaling/v1 of the
HorizontalPodAutoscaler, stored as autoscaling/v2).

Kubernetes stores each kind in one version and converts on the way in and out; a registry
row that names a :class:`Converter` is such a served-only version. The row shares the
stored row's keys (storage keys carry no version), so both versions see the same objects.
:mod:`bosun.api.conversion.serve` answers requests for these rows; the converters are pure
functions of one object, kept one module per kind.
"""

from __future__ import annotations

from typing import Any, Protocol

Obj = dict[str, Any]


class Converter(Protocol):
    """How one served version maps onto the stored version of its kind."""

    storage_version: str

    def to_storage(self, obj: Obj) -> Obj:
        """The served-version object as the stored version (what validation and the store see)."""
        ...

    def from_storage(self, obj: Obj) -> Obj:
        """The stored object as the served version (what the client reads)."""
        ...
