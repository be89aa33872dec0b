"""Kubernetes' CEL format library: ``format.dns1123Label()`` (and the other named formats)
or ``format.named(name)``, whose ``validate(s)`` answers ``optional.none()`` for a valid
string and the list of what is wrong otherwise, in Kubernetes' validation words (the name
checks are :mod:`bosun.api.validation.meta`'s, the ones the server applies to names)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import cel

from bosun.api.cellib.typed import string, unwrap, wrap
from bosun.api.cellib.urls import is_url
from bosun.api.validation.meta import dns1035_label, dns1123_label, dns1123_subdomain, label_value, qualified_name

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _prefix(check: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """A generateName prefix: valid if it would be with a character after a trailing dash."""
    return lambda s: check(s[:-1] + "a" if s.endswith("-") else s)


def _uri(s: str) -> list[str]:
    return [] if is_url(s) else ["invalid URI"]


def _uuid(s: str) -> list[str]:
    return [] if _UUID.match(s) else ["does not match the UUID format"]


def _byte(s: str) -> list[str]:
    try:
        base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return ["invalid base64"]
    return []


def _date(s: str) -> list[str]:
    try:
        datetime.strptime(s, "%Y-%m-%d")
    except ValueError:
        return ["invalid date"]
    return []


def _datetime(s: str) -> list[str]:
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", s):
        return ["invalid datetime"]
    try:
        datetime.fromisoformat(s.upper().replace("Z", "+00:00"))
    except ValueError:
        return ["invalid datetime"]
    return []


CHECKS: dict[str, Callable[[str], list[str]]] = {
    "dns1123Label": dns1123_label, "dns1123Subdomain": dns1123_subdomain, "dns1035Label": dns1035_label,
    "qualifiedName": lambda s: list(qualified_name(s)),
    "dns1123LabelPrefix": _prefix(dns1123_label), "dns1123SubdomainPrefix": _prefix(dns1123_subdomain),
    "dns1035LabelPrefix": _prefix(dns1035_label), "labelValue": label_value,
    "uri": _uri, "uuid": _uuid, "byte": _byte, "date": _date, "datetime": _datetime,
}


def named(name: Any) -> Any:
    text = string(name)
    return cel.OptionalValue.of(wrap("format", text)) if text in CHECKS else cel.OptionalValue.none()


def validate(fmt: Any, value: Any) -> Any:
    errs = CHECKS[unwrap("format", fmt)](string(value))
    return cel.OptionalValue.of(errs) if errs else cel.OptionalValue.none()


def _maker(name: str) -> Callable[[], dict[str, str]]:
    return lambda: wrap("format", name)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "format.named": named, "validate": validate,
    **{f"format.{name}": _maker(name) for name in CHECKS},
}
