"""Compose's durations (``1m30s``, ``500ms``) and byte sizes (``256M``, ``1g``) as numbers."""

from __future__ import annotations

import re
from typing import Any

from bosun.compose.errors import ComposeError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def seconds(value: Any, where: str) -> float:
    """A Go duration string (``1m30s``) or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ComposeError(f"{where}: invalid duration {text!r}")
    return total


def whole_seconds(value: Any, where: str, minimum: int = 0) -> int:
    """Kubernetes counts whole seconds; round up so a short duration never becomes 0."""
    s = seconds(value, where)
    whole = int(s) if s == int(s) else int(s) + 1
    return max(whole, minimum)


def size_bytes(value: Any, where: str) -> int:
    """Docker's sizes are binary: ``256M`` and ``256MiB`` are both 256 * 1024**2 bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value).strip())
    if m is None:
        raise ComposeError(f"{where}: invalid size {value!r}")
    return int(float(m.group(1)) * 1024 ** _SIZE_POWERS[m.group(2).lower()])
