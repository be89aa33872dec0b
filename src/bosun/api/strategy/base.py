"""The questions every kind answers, and the generic answers (Kubernetes' registry/rest strategies).

The generic write path (:mod:`bosun.api.storage`) asks a kind's strategy, in a fixed order:

- create: :meth:`Strategy.prepare_for_create` (status reset), :meth:`~Strategy.default`,
  the admission chain, :meth:`~Strategy.validate`;
- update: :meth:`~Strategy.prepare_for_update` (keep what the server allocated),
  :meth:`~Strategy.default`, :meth:`~Strategy.canonicalize`, :meth:`~Strategy.validate` and
  :meth:`~Strategy.validate_update`, the admission chain;
- delete: :meth:`~Strategy.mark_for_deletion` (grace period, finalizers) and
  :meth:`~Strategy.holds_deletion`.

A kind with nothing special uses :class:`Strategy` as is, given its validator and defaulter;
a kind with its own rules subclasses it and overrides only those. Nothing outside a kind's
strategy (and its admission plugins) names the kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bosun.api.errors import FieldError
from bosun.api.objects import json_copy
from bosun.api.validation.fields import Checker
from bosun.api.validation.meta import dns1123_subdomain, validate_object_meta

if TYPE_CHECKING:
    from bosun.api.registry import Resource
    from bosun.security.identity import User

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Validator = Callable[[Checker, Obj], None]
UpdateRule = Callable[[Obj, Obj], list[FieldError]]
Defaulter = Callable[[Obj], None]
Warner = Callable[[Obj], list[str]]


class Strategy:
    """The generic strategy. ``validator`` checks the whole object (schema and semantics,
    one stage), ``update_rule`` what an update may not change, ``defaulter`` fills in what
    a client left out; ``status_zeros`` are status fields Kubernetes' Go types serialize
    even at zero (clients such as the official Python client treat them as required);
    ``return_deleted_object``: a delete answers with the object, not a Status, as
    kube-apiserver does for that kind; ``warner`` lists what is accepted but probably a
    mistake (deprecated fields), for the response's ``Warning`` headers."""

    def __init__(
        self,
        validator: Validator | None = None,
        *,
        update_rule: UpdateRule | None = None,
        defaulter: Defaulter | None = None,
        status_zeros: Mapping[str, int] | None = None,
        return_deleted_object: bool = False,
        warner: Warner | None = None,
    ) -> None:
        self.validator = validator
        self.update_rule = update_rule
        self.defaulter = defaulter
        self.status_zeros: Mapping[str, int] = status_zeros or {}
        self.return_deleted_object = return_deleted_object
        self.warner = warner

    # ---- create ----------------------------------------------------------------------

    def initial_status(self, obj: Obj) -> Obj | None:
        """The status a new object starts with (None: keep the client's)."""
        return {}

    def prepare_for_create(self, res: Resource, obj: Obj, user: User | None = None) -> None:
        """Clients do not own status: it starts as the kind's initial status. ``user`` is
        who creates it (None: the server itself), for kinds that record their requester."""
        if "status" not in res.subresources:
            return
        status = self.initial_status(obj)
        if status is None:
            return
        obj["status"] = status
        self.canonicalize(obj)

    # ---- update ----------------------------------------------------------------------

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Keep values the server allocated when an update body leaves them out (a
        ``kubectl replace`` of a manifest carries none). Called before defaults."""

    # ---- both ------------------------------------------------------------------------

    def default(self, res: Resource, obj: Obj) -> None:
        """Fill what the client left out. Never raises: malformed parts are left for
        validation to report."""
        if not isinstance(obj, dict):
            return
        meta = obj.get("metadata")
        if not res.namespaced and isinstance(meta, dict):
            meta.pop("namespace", None)  # Kubernetes clears it on cluster-scoped objects
        if self.defaulter is None:
            return
        try:
            self.defaulter(obj)
        except Exception:
            return  # only reachable with malformed input; validation reports it

    def canonicalize(self, obj: Obj) -> None:
        """Status fields that are always present, at zero if nothing set them."""
        if not self.status_zeros:
            return
        status = obj.get("status")
        if status is None:
            status = obj["status"] = {}
        if isinstance(status, dict):
            for k, v in self.status_zeros.items():
                status.setdefault(k, v)

    def validate(self, res: Resource, obj: Obj) -> list[FieldError]:
        """Every rule that needs only the object itself (may raise on a rule's bug: the
        caller, :func:`bosun.api.validation.validate`, turns that into a field error)."""
        c = Checker()
        if self.validator is None:
            validate_object_meta(c, obj, dns1123_subdomain, namespaced=res.namespaced)
        else:
            self.validator(c, obj)
        return c.errors

    def warnings(self, obj: Obj) -> list[str]:
        """What the write is told without being refused (never raises: a malformed object
        is validation's to report)."""
        if self.warner is None:
            return []
        try:
            return self.warner(obj)
        except Exception:
            return []

    def bumps_generation(self, res: Resource, new: Obj, old: Obj) -> bool:
        """Whether an update changes what ``metadata.generation`` counts: the spec."""
        return res.has_spec and new.get("spec") != old.get("spec")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """The rules an update must also obey: fields that may not change once set."""
        return self.update_rule(new, old) if self.update_rule is not None else []

    # ---- writable subresources of the kind's own (a pod's ephemeralcontainers) ----------

    # Subresources whose GET, PUT and PATCH the generic code serves as writes of part of the
    # object, the part :meth:`subresource_write` says.
    own_subresources: tuple[str, ...] = ()

    def subresource_write(self, sub: str, old: Obj, new: Obj) -> Obj | None:
        """The object a write through subresource ``sub`` stores: the stored object with
        only the part ``sub`` owns taken from ``new``; None when the kind has no such part
        (status, scale and the rest are the generic code's)."""
        return None

    def validate_subresource(self, sub: str, new: Obj, old: Obj) -> list[FieldError]:
        """What a write through the kind's own subresource ``sub`` must obey."""
        return []

    # ---- delete ----------------------------------------------------------------------

    def grace_period(self, obj: Obj, options: Obj) -> int:
        """Seconds the object stays, marked, before it goes (0: at once)."""
        return 0

    def holds_deletion(self, obj: Obj) -> bool:
        """Whether an object marked for deletion whose finalizers are all gone must still
        wait (for something other than a finalizer to finish)."""
        return False

    def mark_for_deletion(self, obj: Obj, finalizers: list[str], options: Obj) -> Obj | None:
        """The object to write instead of deleting it now, or None to delete now.
        ``finalizers`` are the object's, plus the one its propagation policy asks for."""
        grace = self.grace_period(obj, options)
        if not finalizers and grace <= 0:
            return None
        out = json_copy(obj)
        om = out["metadata"]
        if finalizers:
            om["finalizers"] = finalizers
        current = om.get("deletionGracePeriodSeconds")
        if not om.get("deletionTimestamp") or (current is not None and grace < int(current)):
            when = datetime.now(UTC) + timedelta(seconds=grace)
            om["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            om["deletionGracePeriodSeconds"] = grace
        return out


GENERIC = Strategy()
