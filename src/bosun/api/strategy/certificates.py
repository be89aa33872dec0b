"""The CertificateSigningRequest's strategy (upstream's ``pkg/registry/certificates``).

Who asks is recorded by the server, never taken from the body: ``spec.username``, ``uid``,
``groups`` and ``extra`` are the requesting user's. The spec is fixed at create; the
status is written by two subresources with separate owners: ``approval`` (an approver's
Approved or Denied condition) and ``status`` (the signer's certificate and its other
conditions), so that neither can do the other's part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bosun.api.errors import FieldError
from bosun.api.objects import json_copy, now_rfc3339
from bosun.api.strategy.base import Obj, Strategy
from bosun.api.validation.certificates import (
    APPROVED,
    DENIED,
    certificate_update,
    conditions_of,
    kept_conditions,
    validate_certificate,
    validate_conditions,
    validate_csr,
)
from bosun.api.validation.fields import Checker

if TYPE_CHECKING:
    from bosun.api.registry import Resource
    from bosun.security.identity import User

_APPROVAL = (APPROVED, DENIED)


def _stamped(conditions: list[Obj], old: list[Obj]) -> list[Obj]:
    """Conditions with their times filled in as upstream does: a condition that was there
    keeps its transition time unless its status changed."""
    before = {c.get("type"): c for c in old}
    now = now_rfc3339()
    out = []
    for cond in conditions:
        cond = dict(cond)
        if not cond.get("lastUpdateTime"):
            cond["lastUpdateTime"] = now
        if not cond.get("lastTransitionTime"):
            prev = before.get(cond.get("type"))
            same = prev is not None and prev.get("status") == cond.get("status")
            cond["lastTransitionTime"] = (prev or {}).get("lastTransitionTime") if same else now
            if not cond["lastTransitionTime"]:
                cond["lastTransitionTime"] = now
        out.append(cond)
    return out


class CSRStrategy(Strategy):
    own_subresources = ("approval", "status")

    def prepare_for_create(self, res: Resource, obj: Obj, user: User | None = None) -> None:
        super().prepare_for_create(res, obj, user)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for f in ("username", "uid", "groups", "extra"):
            spec.pop(f, None)
        if user is None:
            return
        spec["username"] = user.name
        if user.uid:
            spec["uid"] = user.uid
        if user.groups:
            spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """The spec cannot change once created (the status is the subresources')."""
        if "spec" in old:
            new["spec"] = json_copy(old["spec"])

    def subresource_write(self, sub: str, old: Obj, new: Obj) -> Obj | None:
        if sub not in self.own_subresources:
            return None
        out = dict(old)
        out["metadata"] = dict(old["metadata"])
        status = dict(old.get("status") or {})
        sent = new.get("status") if isinstance(new.get("status"), dict) else {}
        sent_conditions = [c for c in (sent.get("conditions") or []) if isinstance(c, dict)]
        before = conditions_of(old)
        if sub == "approval":  # the conditions, and nothing else
            conditions = sent_conditions
        else:  # everything but the approver's conditions
            status = dict(sent)
            conditions = ([c for c in before if c.get("type") in _APPROVAL]
                          + [c for c in sent_conditions if c.get("type") not in _APPROVAL])
        if conditions:
            status["conditions"] = _stamped(conditions, before)
        else:
            status.pop("conditions", None)
        out["status"] = status
        return out

    def validate_subresource(self, sub: str, new: Obj, old: Obj) -> list[FieldError]:
        c = Checker()
        validate_conditions(c, new)
        if sub == "status":
            validate_certificate(c, new)
            c.extend(certificate_update(new, old))
        return c.errors + kept_conditions(new, old)


CSR = CSRStrategy(validate_csr)
