"""Validation of API objects, per kind, with Kubernetes' field paths and messages.

Each kind's rules are named by its strategy (:mod:`bosun.api.strategy`); the modules of this
package hold the rules themselves. :func:`validate` runs a kind's whole-object rules (schema
and semantics, one stage) on every create and update, after defaults and after patches, and
:func:`validate_update` the rules that compare with the stored object. Both return field
errors and never raise, whatever the body holds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bosun.api.errors import FieldError
from bosun.api.validation.fields import type_error

if TYPE_CHECKING:
    from bosun.api.registry import Resource

log = logging.getLogger(__name__)


def validate_unchecked(resource: Resource, obj: Any) -> list[FieldError]:
    """:func:`validate` without the safety net; tests call this so bugs surface as exceptions."""
    if not isinstance(obj, dict):
        return [type_error("", obj, "object")]
    return resource.strategy.validate(resource, obj)


def validate(resource: Resource, obj: Any) -> list[FieldError]:
    """Every rule of ``resource``'s kind that needs only the object itself."""
    try:
        return validate_unchecked(resource, obj)
    except Exception as exc:  # a rule's bug must not become a 500 for the client
        log.exception("validation of %s crashed", resource.kind)
        return [FieldError("FieldValueInvalid", "", f"object could not be validated: {exc}")]


def validate_update(resource: Resource, new: Any, old: Any) -> list[FieldError]:
    """The rules an update must also obey: fields that may not change once set."""
    if not isinstance(new, dict) or not isinstance(old, dict):
        return []
    try:
        return resource.strategy.validate_update(new, old)
    except Exception as exc:
        log.exception("update validation of %s crashed", resource.kind)
        return [FieldError("FieldValueInvalid", "", f"object could not be validated: {exc}")]


__all__ = ["validate", "validate_unchecked", "validate_update"]
