"""CEL expressions of admission configuration, checked alike wherever they stand: webhooks'
and admission policies' ``matchConditions`` (one rule upstream, ``validateMatchConditions``),
a policy's validations, variables and audit annotations. Only the variables an expression
may name differ, so they are the caller's."""

from __future__ import annotations

from typing import Any

from bosun.api.celrefs import undeclared
from bosun.api.crd.cel import compile_error
from bosun.api.errors import duplicate, invalid, required
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import qualified_name

Obj = dict[str, Any]
MAX_MATCH_CONDITIONS = 64


def expression(c: Checker, parent: Obj, name: str, path: str, declared: frozenset[str], *,
               needed: bool = True) -> None:
    """``parent[name]`` compiles and names no variable outside ``declared``."""
    text = c.text(parent, name, path)
    if not text:
        if needed:
            c.add(required(path, ""))
        return
    why = compile_error(text)
    if why is None and (missing := undeclared(text, declared)) is not None:
        why = f"compilation failed: {missing}"
    if why is not None:
        c.add(invalid(path, text, why))


def named_expressions(c: Checker, items: list[tuple[int, Obj]], path: str, name_field: str, expr_field: str,
                      declared: frozenset[str]) -> None:
    """Items named by a required, qualified name unique among them, each with a CEL expression
    (match conditions by ``name``, audit annotations by ``key``)."""
    seen: set[str] = set()
    for i, item in items:
        p = index(path, i)
        name = c.text(item, name_field, child(p, name_field))
        if not name:
            c.add(required(child(p, name_field), ""))
        else:
            for msg in qualified_name(name):
                c.add(invalid(child(p, name_field), name, msg))
            if name in seen:
                c.add(duplicate(child(p, name_field), name))
            seen.add(name)
        expression(c, item, expr_field, child(p, expr_field), declared)


def match_conditions(c: Checker, parent: Obj, path: str, declared: frozenset[str]) -> None:
    conditions = c.objects(parent, "matchConditions", path)
    if len(conditions) > MAX_MATCH_CONDITIONS:
        c.add(invalid(path, len(conditions), f"must have at most {MAX_MATCH_CONDITIONS} items"))
    named_expressions(c, conditions, path, "name", "expression", declared)
