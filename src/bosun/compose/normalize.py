"""Short syntax to long syntax, once, so merging and translation read one shape per field.

Compose lets most fields be written two ways (``ports: ["8080:80"]`` or a list of mappings,
``environment`` as a list or a mapping, ``depends_on`` as a list or a mapping ...). Every
function here turns one field into its long form and leaves anything unexpected to the
schema, which has already accepted the file.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from bosun.compose.errors import ComposeError

JSON = dict[str, Any]

_PORT = re.compile(
    r"^(?:(?P<ip>\[[^\]]+\]|\d+\.\d+\.\d+\.\d+):)?(?:(?P<published>[0-9]+(?:-[0-9]+)?)?:)?"
    r"(?P<target>[0-9]+(?:-[0-9]+)?)(?:/(?P<protocol>tcp|udp|sctp))?$"
)


def list_or_dict(value: Any, sep: str = "=") -> dict[str, str | None]:
    """``["A=1", "B"]`` or ``{A: 1, B: null}`` -> ``{"A": "1", "B": None}`` (None: take it
    from the environment, as Compose does for a bare name)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): None if v is None else _scalar(v) for k, v in value.items()}
    out: dict[str, str | None] = {}
    for item in value:
        key, found, val = str(item).partition(sep)
        out[key.strip() if sep != "=" else key] = val if found else None
    return out


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def ports(value: Any, where: str) -> list[JSON]:
    """Each port as ``{target, published?, protocol, mode, host_ip?}``; ranges expand."""
    out: list[JSON] = []
    for item in value or []:
        if isinstance(item, dict):
            entry = dict(item)
            entry["target"] = to_int(entry.get("target"), f"{where}.ports.target")
            if entry.get("published") not in (None, ""):
                entry["published"] = str(entry["published"])
            entry.setdefault("protocol", "tcp")
            entry.setdefault("mode", "ingress")
            out.extend(_expand(entry, where))
            continue
        m = _PORT.match(str(item))
        if m is None:
            raise ComposeError(f"{where}.ports: invalid port specification: {item!r}")
        targets = _range(m["target"])
        published = _range(m["published"]) if m["published"] else []
        if published and len(published) not in (1, len(targets)):
            raise ComposeError(f"{where}.ports: port ranges don't match in length: {item!r}")
        for i, t in enumerate(targets):
            entry = {"target": t, "protocol": m["protocol"] or "tcp", "mode": "ingress"}
            if published:
                entry["published"] = str(published[i] if len(published) > 1 else published[0])
            if m["ip"]:
                entry["host_ip"] = m["ip"].strip("[]")
            out.append(entry)
    return out


def _expand(entry: JSON, where: str) -> list[JSON]:
    pub = entry.get("published")
    if pub is None or "-" not in str(pub):
        return [entry]
    return [dict(entry, published=str(p)) for p in _range(str(pub))]


def to_int(value: Any, where: str) -> int:
    """Integers may arrive as strings after interpolation (``replicas: ${N}``)."""
    if isinstance(value, bool):
        raise ComposeError(f"{where} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ComposeError(f"{where} must be an integer, not {value!r}") from None


def volumes(value: Any, where: str) -> list[JSON]:
    """Each mount as ``{type, source?, target, read_only}`` (short syntax ``src:dst:ro``)."""
    out: list[JSON] = []
    for item in value or []:
        if isinstance(item, dict):
            out.append(dict(item))
            continue
        parts = str(item).split(":")
        if len(parts) == 1:
            out.append({"type": "volume", "target": parts[0]})
            continue
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else ""
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append({"type": kind, "source": source, "target": target,
                    "read_only": "ro" in mode.split(",")})
    return out


def depends_on(value: Any) -> dict[str, JSON]:
    if isinstance(value, list):
        return {str(name): {"condition": "service_started", "required": True} for name in value}
    out: dict[str, JSON] = {}
    for name, spec in (value or {}).items():
        spec = dict(spec or {})
        spec.setdefault("condition", "service_started")
        spec.setdefault("required", True)
        out[str(name)] = spec
    return out


def networks(value: Any) -> dict[str, JSON]:
    if isinstance(value, list):
        return {str(n): {} for n in value}
    return {str(k): dict(v or {}) for k, v in (value or {}).items()}


def file_refs(value: Any) -> list[JSON]:
    """``secrets``/``configs`` of a service: ``["x"]`` -> ``[{"source": "x"}]``."""
    return [dict(v) if isinstance(v, dict) else {"source": str(v)} for v in (value or [])]


def command(value: Any) -> list[str] | None:
    """A string command is split as a shell would split it (Compose does the same)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    return shlex.split(str(value))
