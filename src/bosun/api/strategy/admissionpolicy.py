"""The ValidatingAdmissionPolicy kinds' strategies (admissionregistration.k8s.io/v1).

Their rules are in :mod:`bosun.api.validation.admissionpolicy`; enforcing them is the
admission plugin's (:mod:`bosun.api.admission.policy`), and keeping a policy's
``status.observedGeneration`` current is its keeper's (:mod:`bosun.api.admission.policyset`).
"""

from __future__ import annotations

from typing import Any

from bosun.api.strategy.base import Strategy
from bosun.api.validation.admissionpolicy import default_binding, default_policy, validate_binding, validate_policy

Obj = dict[str, Any]


class PolicyStrategy(Strategy):
    def __init__(self) -> None:
        super().__init__(validate_policy, defaulter=default_policy)

    def initial_status(self, obj: Obj) -> Obj | None:
        # Expressions are checked when written (no type checking against schemas): a new
        # policy is observed as it is stored.
        generation = (obj.get("metadata") or {}).get("generation") or 1
        return {"observedGeneration": generation, "typeChecking": {}}


POLICY = PolicyStrategy()
BINDING = Strategy(validate_binding, defaulter=default_binding)
