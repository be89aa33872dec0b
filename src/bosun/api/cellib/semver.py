"""Kubernetes' CEL semver library: ``semver()``, ``isSemver()``, ``major()``, ``minor()``,
``patch()`` and the comparisons (shared by name with quantities: the registry picks by the
receiver). Versions are strict semver 2.0.0 (``1.2.3``, ``1.2.3-rc.1+build``); precedence
ignores build metadata, as the spec says. ``semver(s, true)``'s normalisation (a ``v``
prefix, missing minor or patch) is done as upstream."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bosun.api.cellib.typed import string, unwrap, wrap

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")

Version = tuple[int, int, int, tuple[str, ...]]


def _normalize(text: str) -> str:
    text = text.removeprefix("v")
    m = re.search(r"[-+]", text)
    core, rest = (text[:m.start()], text[m.start():]) if m else (text, "")
    parts = [p.lstrip("0") or "0" for p in core.split(".")]
    return ".".join(parts + ["0"] * (3 - len(parts))) + rest


def _parse(text: str) -> Version:
    m = _SEMVER.match(text)
    if m is None:
        raise ValueError(f"No Major.Minor.Patch elements found: {text!r} is not a semantic version")
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), pre


def semver(value: Any, normalize: Any = False) -> dict[str, str]:
    text = string(value)
    if normalize is True:
        text = _normalize(text)
    _parse(text)
    return wrap("semver", text)


def is_semver(value: Any, normalize: Any = False) -> bool:
    try:
        semver(value, normalize)
    except ValueError:
        return False
    return True


def _version(value: Any) -> Version:
    return _parse(unwrap("semver", value))


def _key(v: Version) -> tuple[Any, ...]:
    major, minor, patch, pre = v
    # A release sorts after its pre-releases; numeric identifiers before alphanumeric ones.
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre)
    return (major, minor, patch, 1 if not pre else 0, ids)


def compare_to(value: Any, other: Any) -> int:
    a, b = _key(_version(value)), _key(_version(other))
    return (a > b) - (a < b)


def is_greater_than(value: Any, other: Any) -> bool:
    return compare_to(value, other) > 0


def is_less_than(value: Any, other: Any) -> bool:
    return compare_to(value, other) < 0


def major(value: Any) -> int:
    return _version(value)[0]


def minor(value: Any) -> int:
    return _version(value)[1]


def patch(value: Any) -> int:
    return _version(value)[2]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "semver": semver, "isSemver": is_semver, "compareTo": compare_to, "isGreaterThan": is_greater_than,
    "isLessThan": is_less_than, "major": major, "minor": minor, "patch": patch,
}
