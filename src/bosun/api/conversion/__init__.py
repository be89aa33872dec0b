"""Served versions of a kind that is stored in another version (autoscaling/v1 of the
HorizontalPodAutoscaler, stored as autoscaling/v2) or in another group (events.k8s.io/v1
Events, stored as core/v1 Events).

Kubernetes stores each kind in one version and converts on the way in and out; a registry
row that names a :class:`Converter` is such a served-only version. Every request is
answered from the stored row's keys, so both views see the same objects.
:mod:`bosun.api.conversion.serve` answers requests for these rows; the converters are pure
functions of one object, kept one module per kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bosun.api.errors import FieldError

Obj = dict[str, Any]


class Converter(Protocol):
    """How one served version maps onto the stored version of its kind."""

    storage_group: str
    storage_version: str

    def to_storage(self, obj: Obj) -> Obj:
        """The served-version object as the stored version (what validation and the store see)."""
        ...

    def from_storage(self, obj: Obj) -> Obj:
        """The stored object as the served version (what the client reads)."""
        ...

    def validate(self, obj: Obj) -> list[FieldError]:
        """What a create in the served version must obey beyond the stored version's
        rules (upstream validates some kinds by the version of the request)."""
        ...
