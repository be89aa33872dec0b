"""An expression's cost model compiled once into nested closures (a plan), so that metering
an evaluation at run time is a few calls, not a walk of the parse tree. The prices are
:mod:`.cost`'s (see its docstring); this module only turns a tree into steps."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import lark

from bosun.api.cellib.shapes import UNKNOWN, Live, Shape, Value

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
STRING_TRAVERSING = frozenset({
    "contains", "startsWith", "endsWith", "charAt", "indexOf", "lastIndexOf", "lowerAscii", "upperAscii",
    "replace", "split", "substring", "trim", "format", "url", "isURL", "quantity", "isQuantity", "ip", "isIP",
    "cidr", "isCIDR", "validate", "quote", "semver", "isSemver",
})
LIST_TRAVERSING = frozenset({"isSorted", "sum", "min", "max", "indexOf", "lastIndexOf", "join"})
REGEX = frozenset({"matches", "find", "findAll"})
_CREATE = {"list": 10, "map": 30, "message": 40}
# cel-go's expansions: the loop condition and ``__result__ && body`` (all, exists), or
# ``__result__ + [body]`` with its list literal (map, filter).
_STEP = {"map": 12, "filter": 13}


class Scope:
    """Where a plan finds its variables: shapes (a schema's, a comprehension's element), then
    run-time values (the first mapping that has the name)."""

    __slots__ = ("live", "shapes")

    def __init__(self, shapes: Mapping[str, Value], live: tuple[Mapping[str, Any], ...]) -> None:
        self.shapes = dict(shapes)
        self.live = live

    def variable(self, name: str) -> Value:
        shape = self.shapes.get(name)
        if shape is not None:
            return shape
        for values in self.live:
            if name in values:
                return Live(values[name])
        return UNKNOWN


Step = Callable[[Scope], tuple[int, Value]]


def traverse(size: int, factor: float = 0.1) -> int:
    return math.ceil(size * factor)


def is_str(shape: Value) -> bool:
    if shape.live:
        return isinstance(shape.value, str)
    return shape.schema is not None and shape.schema.get("type") == "string"


def plan(node: Any) -> Step:
    """The step that prices ``node`` (a parse tree of :file:`grammar.lark`)."""
    if isinstance(node, lark.Token):
        const: tuple[int, Value] = (0, Shape(size_hint=max(len(node) - 2, 0))) if node.type in ("STRING", "BYTES") \
            else (0, UNKNOWN)
        return lambda scope: const
    data, kids = node.data, node.children
    if data == "ident":
        name = str(kids[-1])
        return lambda scope: (1, scope.variable(name))
    if data == "select":
        return _select(plan(kids[0]), str(kids[1]))
    if data == "index":
        return _index(plan(kids[0]), plan(kids[1]))
    if data in ("and_", "or_"):
        return _sum([plan(kids[0]), plan(kids[1])], 0)
    if data == "cond":
        return _cond(plan(kids[0]), plan(kids[1]), plan(kids[2]))
    if data in ("not_", "neg"):
        return _sum([plan(kids[0])], 1)
    if data == "binary":
        return _binary(plan(kids[0]), str(kids[1]), plan(kids[2]))
    if data in _CREATE:
        listing = kids[-1]
        parts = list(listing.children) if isinstance(listing, lark.Tree) else []
        exprs = [e for p in parts for e in (p.children if isinstance(p, lark.Tree) and p.data in ("entry", "field")
                                             else [p]) if not (isinstance(e, lark.Token) and e.type == "IDENT")]
        return _create(_CREATE[data], [plan(e) for e in exprs], len(parts))
    if data == "call":
        return _call(None, str(kids[0]), _args(kids[1]))
    if data == "method":
        return _call(kids[0], str(kids[1]), _args(kids[2]))
    return _sum([plan(k) for k in kids if k is not None], 0)


def _select(inner: Step, name: str) -> Step:
    def step(scope: Scope) -> tuple[int, Value]:
        c, s = inner(scope)
        return c + 1, s.field(name)
    return step


def _index(inner: Step, key: Step) -> Step:
    def step(scope: Scope) -> tuple[int, Value]:
        c, s = inner(scope)
        return c + key(scope)[0] + 1, s.item()
    return step


def _sum(parts: list[Step], base: int) -> Step:
    if len(parts) == 1:
        (one,) = parts
        return lambda scope: (base + one(scope)[0], UNKNOWN)
    if len(parts) == 2:
        first, second = parts
        return lambda scope: (base + first(scope)[0] + second(scope)[0], UNKNOWN)

    def step(scope: Scope) -> tuple[int, Value]:
        return base + sum(p(scope)[0] for p in parts), UNKNOWN
    return step


def _create(base: int, parts: list[Step], size: int) -> Step:
    shape = Shape(size_hint=size)

    def step(scope: Scope) -> tuple[int, Value]:
        return base + sum(p(scope)[0] for p in parts), shape
    return step


def _cond(test: Step, yes: Step, no: Step) -> Step:
    def step(scope: Scope) -> tuple[int, Value]:
        (c1, s1), (c2, s2) = yes(scope), no(scope)
        return test(scope)[0] + max(c1, c2), s1 if c1 >= c2 else s2
    return step


def _binary(left: Step, op: str, right: Step) -> Step:
    def step(scope: Scope) -> tuple[int, Value]:
        (cl, sl), (cr, sr) = left(scope), right(scope)
        base = cl + cr + 1
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return base + (traverse(min(sl.size(), sr.size())) if is_str(sl) or is_str(sr) else 0), UNKNOWN
        if op == "in":
            return base + (0 if (sr.schema or {}).get("type") == "object" or isinstance(sr.value, dict)
                           else sr.size()), UNKNOWN
        if op == "+" and (is_str(sl) or is_str(sr)):
            size = sl.size() + sr.size()
            return base + traverse(size), Shape({"type": "string"}, size_hint=size)
        return base, UNKNOWN
    return step


def _call(target: Any, name: str, args: list[Any]) -> Step:
    if target is not None and name in MACROS and len(args) >= 2 and _is_ident(args[0]):
        return _comprehension(plan(target), name, str(args[0].children[-1]), [plan(b) for b in args[1:]])
    arg_steps = [plan(a) for a in args]
    if name == "has" and target is None:
        return _sum(arg_steps, 0)
    target_step = plan(target) if target is not None else None

    def step(scope: Scope) -> tuple[int, Value]:
        tc, ts = target_step(scope) if target_step is not None else (0, UNKNOWN)
        costs = [a(scope) for a in arg_steps]
        total = tc + sum(c for c, _ in costs) + 1
        receiver = ts if target_step is not None else (costs[0][1] if costs else UNKNOWN)
        if name in REGEX:
            pattern = costs[-1][1] if costs else UNKNOWN
            return total + traverse(receiver.size()) * traverse(pattern.size(), 0.25), Shape(
                size_hint=receiver.size())
        if name in LIST_TRAVERSING and not is_str(receiver):
            return total + receiver.size(), receiver.item()
        if name in ("startsWith", "endsWith") and costs:  # the prefix is traversed, not the string
            return total + traverse(costs[0][1].size()), UNKNOWN
        if name == "contains" and costs and is_str(receiver):
            return total + traverse(receiver.size() * costs[0][1].size()), UNKNOWN
        if name in STRING_TRAVERSING:
            return total + traverse(max([receiver.size(), *(s.size() for _, s in costs)])), Shape(
                size_hint=receiver.size())
        return total, UNKNOWN
    return step


def _comprehension(target: Step, name: str, var: str, bodies: list[Step]) -> Step:
    extra = _STEP.get(name, 3)
    listing = name in ("map", "filter")

    def step(scope: Scope) -> tuple[int, Value]:
        tc, ts = target(scope)
        n = ts.size()
        saved = scope.shapes.get(var)
        scope.shapes[var] = ts.item()
        try:
            body = sum(b(scope)[0] for b in bodies)
        finally:
            if saved is None:
                scope.shapes.pop(var, None)
            else:
                scope.shapes[var] = saved
        return tc + 1 + n * (body + extra), Shape(size_hint=n) if listing else UNKNOWN
    return step


def _args(node: Any) -> list[Any]:
    return list(node.children) if isinstance(node, lark.Tree) else []


def _is_ident(node: Any) -> bool:
    return isinstance(node, lark.Tree) and node.data == "ident"
