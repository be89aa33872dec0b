"""What a CEL expression refers to, for the checks upstream's CEL type checker makes and the
``common-expression-language`` library does not: a variable the environment does not declare
(a compilation error, refused when the expression is written) and a field an object's schema
lacks (a type-checking warning). Both are reported in cel-go's words and layout:

    ERROR: <input>:1:13: undefined field 'replicass'
     | object.spec.replicass > 0
     | ............^

Field paths are read from the text (``object.spec.replicas``, ``has(oldObject.metadata.x)``):
a path through an index (``containers[0].image``) or a comprehension's variable
(``containers.all(c, c.image ...)``) is not followed.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from bosun.api.cellib import NAMESPACES
from bosun.api.crd.cel import compile_rule

# Names of CEL's types, which read as identifiers (``type(x) == string``).
_TYPE_NAMES = frozenset({"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
                         "dyn"})
_IDENT = r"[_a-zA-Z][_a-zA-Z0-9]*"
# A macro's (or a comprehension function's) own variables: ``.all(c, ...)``, ``.map(k, v, ...)``.
_LOCALS = re.compile(rf"\.\s*(?:all|exists|exists_one|map|filter|transformList|transformMap|transformMapEntry)"
                     rf"\s*\(\s*({_IDENT})\s*(?:,\s*({_IDENT})\s*)?,")
_PATH = re.compile(rf"(?<![\w.])({_IDENT})((?:\s*\.\s*{_IDENT})+)")
_SEGMENT = re.compile(rf"\.\s*({_IDENT})")


@dataclass(frozen=True, slots=True)
class FieldPath:
    """``root.a.b`` as written: the fields, each with the offset of the dot before it."""

    root: str
    fields: tuple[tuple[str, int], ...]


def _blank_strings(text: str) -> str:
    """``text`` with the inside of its string literals blanked (offsets kept), so that what a
    string says is never read as a name."""
    out = list(text)
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            quote = text[i:i + 3] if text[i:i + 3] in ("'''", '"""') else ch
            j = i + len(quote)
            while j < len(text) and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            for k in range(i + len(quote), min(j, len(text))):
                out[k] = " "
            i = j + len(quote)
        else:
            i += 1
    return "".join(out)


def error_at(expression: str, offset: int, message: str) -> str:
    """cel-go's report of ``message`` at ``offset``: the position, the line, a caret under it."""
    line_no = expression.count("\n", 0, offset) + 1
    start = expression.rfind("\n", 0, offset) + 1
    end = expression.find("\n", offset)
    line = expression[start:end if end >= 0 else len(expression)]
    column = offset - start
    return f"ERROR: <input>:{line_no}:{column + 1}: {message}\n | {line}\n | {'.' * column}^"


def undeclared(expression: str, declared: Collection[str]) -> str | None:
    """The compilation error upstream gives for the first variable ``expression`` names that
    ``declared`` does not hold (None: there is none, or the expression does not parse)."""
    try:
        program, _ = compile_rule(expression)
    except (ValueError, RuntimeError, TypeError):
        return None
    text = _blank_strings(expression)
    local = {name for m in _LOCALS.finditer(text) for name in m.groups() if name}
    missing = {n for n in program.variables() if n not in declared and n not in local and n not in _TYPE_NAMES
               and n not in NAMESPACES}
    if not missing:
        return None
    found = [(m.start(), n) for n in missing
             if (m := re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", text)) is not None]
    offset, name = min(found) if found else (0, min(missing))
    return error_at(expression, offset, f"undeclared reference to '{name}' (in container '')")


def field_paths(expression: str, roots: Collection[str]) -> list[FieldPath]:
    """Every ``root.field...`` the expression reads, for the given roots (a method call ends a path)."""
    text = _blank_strings(expression)
    out = []
    for m in _PATH.finditer(text):
        if m.group(1) not in roots:
            continue
        fields = []
        for seg in _SEGMENT.finditer(m.group(2)):
            after = m.start(2) + seg.end()
            if text[after:].lstrip().startswith("("):
                break  # a method (``.all(``, ``.startsWith(``), not a field
            fields.append((seg.group(1), m.start(2) + seg.start()))
        if fields:
            out.append(FieldPath(m.group(1), tuple(fields)))
    return out
