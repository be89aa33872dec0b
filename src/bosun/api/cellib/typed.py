"""How the extension libraries' own types (Quantity, IP, CIDR, URL, Format) travel through
the ``common-expression-language`` library, which converts every Python value a function
returns into a CEL value and refuses any object it does not know.

Each such value is a map of one key, ``{"@quantity": "1.5"}``: the key names the type and
the value is a canonical text, so CEL's own ``==`` between two of them is the type's equality
(``quantity("1") == quantity("1000m")``). What this cannot give: ``type(x)`` answers ``map``,
and ``string(ip)`` / ``string(cidr)`` fail, since CEL's ``string()`` cannot be overloaded
from Python.
"""

from __future__ import annotations

from typing import Any


class NoOverload(TypeError):
    """The arguments are not of the types this implementation takes; the registry tries the
    next library's function of the same name (``indexOf`` of strings, then of lists)."""


def wrap(kind: str, text: str) -> dict[str, str]:
    return {"@" + kind: text}


def unwrap(kind: str, value: Any) -> str:
    """The canonical text of a value of ``kind``; NoOverload when ``value`` is not one."""
    if isinstance(value, dict) and len(value) == 1:
        text = value.get("@" + kind)
        if isinstance(text, str):
            return text
    raise NoOverload(f"no such overload: expected {kind}")


def is_kind(kind: str, value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("@" + kind), str)


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise NoOverload("no such overload: expected string")
    return value


def integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise NoOverload("no such overload: expected int")
    return value
