"""Decoding checks of a request body against its kind's schema (``fieldValidation``).

Kubernetes decodes every write into Go structs before anything else, so a wrong JSON type is
a 400 from its decoder, before defaults, admission or validation; unknown fields are
refused (``fieldValidation=Strict``, what kubectl sends), warned about (``Warn``, the
default) or dropped (``Ignore``). This is that decoding stage; the kind's own rules (422)
come later, in its strategy. Writes that are accepted can still carry ``Warning`` headers:
the unknown fields dropped here, and the kind's own warnings (deprecated fields).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bosun.api import errors, schema
from bosun.api.registry import Resource


def check_fields(request: web.Request, res: Resource, obj: dict[str, Any], headers: dict[str, str]) -> None:
    """Wrong JSON types are a 400 like Kubernetes' decoder gives; unknown fields are refused
    (fieldValidation=Strict, what kubectl sends), warned about (Warn, the default) or dropped."""
    mode = request.query.get("fieldValidation", "Warn")
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Strict", "Warn"'
        )
    unknown, problems = schema.check(res, obj)
    if problems:
        raise errors.bad_request(schema.decode_error_message(res, problems[0]))
    schema.canonicalize_quantities(res, obj)
    if not unknown:
        return
    if mode == "Strict":
        raise errors.bad_request(schema.strict_error_message(res, unknown))
    dropped = schema.prune_unknown(res, obj)
    if mode == "Warn":
        add_warnings(headers, [schema.unknown_field_warning(p) for p in dropped])


def add_warnings(headers: dict[str, str], messages: list[str]) -> None:
    """Add ``Warning: 299 - "..."`` entries (RFC 7234's form, which kubectl prints as
    ``Warning: ...``) to the response's headers."""
    current = headers.get("Warning", "")
    # A patch retried after a conflict warns again: each message is sent once.
    entries = [e for m in messages if (e := '299 - "' + m.replace('"', '\\"') + '"') not in current]
    if entries:
        headers["Warning"] = ", ".join([current, *entries] if current else entries)


def warn_about(res: Resource, obj: dict[str, Any], headers: dict[str, str]) -> None:
    """The kind's own warnings (deprecated fields) for a write that will be accepted."""
    add_warnings(headers, res.strategy.warnings(obj))
