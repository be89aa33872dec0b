"""Compose's variable interpolation: ``$V``, ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``,
``${V?e}``, ``${V:+x}``, ``${V+x}`` and ``$$``, applied to every string value of the file.

Defaults may themselves hold variables (``${A:-${B}}``), as compose-go allows, so this is a
small recursive parser rather than one regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from bosun.compose.errors import ComposeError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class _Parser:
    def __init__(self, text: str, env: Mapping[str, str], unset: Callable[[str], None], where: str) -> None:
        self.text = text
        self.env = env
        self.unset = unset
        self.where = where

    def parse(self, pos: int, stop: str = "") -> tuple[str, int]:
        """The substituted text from ``pos`` up to ``stop`` (``}``) or the end."""
        out: list[str] = []
        t = self.text
        while pos < len(t):
            c = t[pos]
            if stop and c == stop:
                return "".join(out), pos
            if c != "$":
                out.append(c)
                pos += 1
                continue
            nxt = t[pos + 1] if pos + 1 < len(t) else ""
            if nxt == "$":
                out.append("$")
                pos += 2
            elif nxt == "{":
                value, pos = self._braced(pos + 2)
                out.append(value)
            else:
                m = _NAME.match(t, pos + 1)
                if m is None:
                    out.append("$")
                    pos += 1
                    continue
                out.append(self._lookup(m.group()))
                pos = m.end()
        if stop:
            raise ComposeError(f"{self.where}: invalid interpolation format for {self.text!r}: missing '}}'")
        return "".join(out), pos

    def _lookup(self, name: str) -> str:
        if name in self.env:
            return self.env[name]
        self.unset(name)
        return ""

    def _braced(self, pos: int) -> tuple[str, int]:
        m = _NAME.match(self.text, pos)
        if m is None:
            raise ComposeError(f"{self.where}: invalid interpolation format for {self.text!r}: "
                               "a variable name must follow '${'")
        name, pos = m.group(), m.end()
        if pos < len(self.text) and self.text[pos] == "}":
            return self._lookup(name), pos + 1
        op = next((o for o in _OPERATORS if self.text.startswith(o, pos)), None)
        if op is None:
            raise ComposeError(f"{self.where}: invalid interpolation format for {self.text!r}")
        arg, end = self.parse(pos + len(op), stop="}")
        value = self.env.get(name)
        is_set = value is not None
        non_empty = bool(value)
        good = non_empty if op.startswith(":") else is_set
        kind = op[-1]
        if kind == "-":
            result = value if good and value is not None else arg
        elif kind == "+":
            result = arg if good else ""
        else:  # "?": required
            if not good:
                detail = arg or ("is not set" if not is_set else "is empty")
                raise ComposeError(f"{self.where}: required variable {name} is missing a value: {detail}")
            result = value or ""
        return result, end + 1


def interpolate_text(text: str, env: Mapping[str, str], unset: Callable[[str], None], where: str = "") -> str:
    value, _ = _Parser(text, env, unset, where).parse(0)
    return value


def interpolate(tree: Any, env: Mapping[str, str], unset: Callable[[str], None], where: str = "") -> Any:
    """A copy of ``tree`` with every string value (not keys) interpolated; ``unset(name)`` is
    called for each variable that was neither set nor given a default (Compose warns)."""
    if isinstance(tree, str):
        return interpolate_text(tree, env, unset, where)
    if isinstance(tree, dict):
        return {k: interpolate(v, env, unset, f"{where}.{k}" if where else str(k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [interpolate(v, env, unset, f"{where}[{i}]") for i, v in enumerate(tree)]
    return tree
