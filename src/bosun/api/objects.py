"""Encoding objects for the store and the server-owned parts of their metadata.

The store holds objects without ``metadata.resourceVersion``: the version *is* the store
revision of the key and is only known after the write, so it is stamped on every read.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from bosun.store.base import KeyValue

# Kubernetes' generateName alphabet: no vowels (no words) and no look-alike characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    """A timestamp as Kubernetes writes metav1.Time (second precision, UTC, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """Parse metav1.Time / MicroTime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_uid() -> str:
    return str(uuid.uuid4())


MAX_GENERATED_PREFIX = 58  # 63 - 5 random characters, as Kubernetes


def generated_name(prefix: str) -> str:
    return prefix[:MAX_GENERATED_PREFIX] + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def encode(obj: dict[str, Any]) -> bytes:
    """Serialize for the store, without the resourceVersion (the revision carries it)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "resourceVersion" in meta:
        rv = meta.pop("resourceVersion")
        try:
            return orjson.dumps(obj)
        finally:
            meta["resourceVersion"] = rv
    return orjson.dumps(obj)


def decode(value: bytes, revision: int) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def decode_kv(kv: KeyValue) -> dict[str, Any]:
    return decode(kv.value, kv.mod_revision)


def json_copy(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON data: an orjson round trip is several times faster than
    copy.deepcopy, and API objects are JSON by construction."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return out


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else an empty one (client input may hold anything)."""
    return value if isinstance(value, dict) else {}


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def strip_for_compare(obj: dict[str, Any]) -> dict[str, Any]:
    """The parts of an object whose change counts as a write (for no-op detection)."""
    out = dict(obj)
    m = dict(out.get("metadata") or {})
    m.pop("resourceVersion", None)
    m.pop("managedFields", None)
    out["metadata"] = m
    return out
