"""The ValidatingAdmissionPolicy kinds' strategies (admissionregistration.k8s.io/v1).

Their rules are in :mod:`bosun.api.validation.admissionpolicy`; enforcing them is the
admission plugin's (:mod:`bosun.api.admission.policy`), and writing a policy's status
(``observedGeneration`` and ``typeChecking``, a moment after each new generation, as upstream's
type-checking controller does) is its keeper's (:mod:`bosun.api.admission.policyset`).
"""

from __future__ import annotations

from bosun.api.strategy.base import Strategy
from bosun.api.validation.admissionpolicy import default_binding, default_policy, validate_binding, validate_policy

POLICY = Strategy(validate_policy, defaulter=default_policy)
BINDING = Strategy(validate_binding, defaulter=default_binding)
