"""Strategies of the admission webhook configurations (``admissionregistration.k8s.io/v1``):
nothing beyond their validator and defaulter, so each is the generic strategy."""

from __future__ import annotations

from bosun.api.strategy.base import Strategy
from bosun.api.validation import webhooks as v

VALIDATING_WEBHOOK_CONFIGURATION = Strategy(v.validate_validating, defaulter=v.default_validating)
MUTATING_WEBHOOK_CONFIGURATION = Strategy(v.validate_mutating, defaulter=v.default_mutating)
