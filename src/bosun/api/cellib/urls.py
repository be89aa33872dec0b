"""Kubernetes' CEL URL library: ``url()``, ``isURL()`` and the accessors of a URL.

A URL must be absolute (``https://host/path``) or an absolute path (``/path``), as Go's
``url.ParseRequestURI`` wants; the accessors answer as Go's ``url.URL`` does (``getHost``
keeps the port and an IPv6 address's brackets, ``getHostname`` drops both)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import SplitResult, parse_qs, quote, urlsplit

from bosun.api.cellib.typed import string, unwrap, wrap


@lru_cache(maxsize=512)
def _parse(text: str) -> SplitResult | None:
    if not text or any(c.isspace() for c in text):
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme:
        if not (parts.scheme[0].isalpha() and all(c.isalnum() or c in "+-." for c in parts.scheme)):
            return None
        return parts
    return parts if text.startswith("/") else None


def url(value: Any) -> dict[str, str]:
    text = string(value)
    if _parse(text) is None:
        raise ValueError(f'URL parse error during conversion from string: parse "{text}": invalid URI for request')
    return wrap("url", text)


def is_url(value: Any) -> bool:
    return _parse(string(value)) is not None


def _url(value: Any) -> SplitResult:
    parts = _parse(unwrap("url", value))
    assert parts is not None  # only url() makes one
    return parts


def get_scheme(value: Any) -> str:
    return _url(value).scheme


def get_host(value: Any) -> str:
    return _url(value).netloc.rpartition("@")[2]


def get_hostname(value: Any) -> str:
    return _url(value).hostname or ""


def get_port(value: Any) -> str:
    host = get_host(value)
    head, colon, port = host.rpartition(":")
    return port if colon and not port.endswith("]") and (not head.startswith("[") or head.endswith("]")) else ""


def get_escaped_path(value: Any) -> str:
    return quote(_url(value).path, safe="/:@!$&'()*+,;=-._~%")


def get_query(value: Any) -> dict[str, list[str]]:
    return parse_qs(_url(value).query, keep_blank_values=True)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "url": url, "isURL": is_url, "getScheme": get_scheme, "getHost": get_host, "getHostname": get_hostname,
    "getPort": get_port, "getEscapedPath": get_escaped_path, "getQuery": get_query,
}
