"""List continue tokens: where the next page starts, and the revision the first page read.

Opaque to clients, as in Kubernetes (base64 of a small JSON object); a token that does not
decode, or that points outside the listed resource, is a 400.
"""

from __future__ import annotations

import base64

import orjson

from bosun.api import errors


def encode(next_key: str, rv: str, prefix: str) -> str:
    tok = {"v": "meta.k8s.io/v1", "rv": int(rv), "start": next_key[len(prefix):]}
    return base64.urlsafe_b64encode(orjson.dumps(tok)).decode().rstrip("=")


def decode(token: str, prefix: str) -> tuple[str, str]:
    try:
        pad = "=" * (-len(token) % 4)
        tok = orjson.loads(base64.urlsafe_b64decode(token + pad))
        start = str(tok["start"])
        rv = str(int(tok["rv"]))
    except Exception as exc:
        raise errors.bad_request(f"continue key is not valid: {token!r}") from exc
    if ".." in start or start.startswith("/"):
        raise errors.bad_request("continue key is not valid: it points outside the listed resource")
    return prefix + start, rv
