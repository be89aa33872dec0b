"""The cost of a CEL expression, as cel-go's estimator and Kubernetes' limits count it: the
``common-expression-language`` interpreter neither estimates nor meters cost, so expressions
are parsed here (:file:`grammar.lark`, with ``lark``) and costed over that tree.

One walk serves both uses. Statically (a CRD is written) the sizes come from the schema:
``maxLength``, ``maxItems``, ``maxProperties``, or when those are missing, as upstream, as
many as fit in a request of 3 MiB. At run time the sizes are those of the values at hand.

The model is cel-go's for what rules commonly do: 1 per variable, field, index, operator and
call; comprehensions (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) cost their
range plus size x (body + 3, or + 12 and 13 for map and filter, which build a list each
step); string traversals (``==``, ``startsWith`` of its prefix, ``contains`` of string x
substring, ``+``, the string and regex libraries) 0.1 per character; ``matches`` and ``find`` size x 0.1
x regex length x 0.25; ``in`` a list and the list library 1 per element; list, map and
message literals 10, 30 and 40. Approximated: ``&&`` and ``||`` are priced at both sides and
``?:`` at its costlier branch; at run time a comprehension's body is priced once, on the range's largest
element, times the range's size, and short-circuits are not credited (so the runtime figure
is an upper bound of what cel-go meters); a call this model does not know costs 1 plus its
arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import lark

MAX_REQUEST_BYTES = 3 * 1024 * 1024
PER_CALL_LIMIT = 1_000_000  # upstream's PerCallLimit (one evaluation)
RUNTIME_BUDGET = 10_000_000  # upstream's RuntimeCELCostBudget (all rules of one object)
STATIC_LIMIT = 10_000_000  # StaticEstimatedCostLimit (one rule, times its cardinality)
STATIC_CRD_LIMIT = 100_000_000  # StaticEstimatedCRDCostLimit (every rule of a schema)
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_STRING_TRAVERSING = frozenset({
    "contains", "startsWith", "endsWith", "charAt", "indexOf", "lastIndexOf", "lowerAscii", "upperAscii",
    "replace", "split", "substring", "trim", "format", "url", "isURL", "quantity", "isQuantity", "ip", "isIP",
    "cidr", "isCIDR", "validate", "quote", "semver", "isSemver",
})
_LIST_TRAVERSING = frozenset({"isSorted", "sum", "min", "max", "indexOf", "lastIndexOf", "join"})
_REGEX = frozenset({"matches", "find", "findAll"})
_CREATE = {"list": 10, "map": 30, "message": 40}


@dataclass(frozen=True, slots=True)
class Shape:
    """What is known of a value: its schema (static) or the value itself (run time)."""

    schema: Mapping[str, Any] | None = None
    value: Any = None
    live: bool = False  # ``value`` is the value
    size_hint: int | None = None  # a literal's, or a result's, size

    def size(self) -> int:
        if self.size_hint is not None:
            return self.size_hint
        if self.live:
            return len(self.value) if isinstance(self.value, str | list | dict | bytes) else 1
        return _schema_size(self.schema) if self.schema is not None else 1

    def field(self, name: str) -> Value:
        if self.live:
            return Live(self.value.get(name) if isinstance(self.value, dict) else None)
        if self.schema is None:
            return UNKNOWN
        props = self.schema.get("properties")
        if isinstance(props, dict) and isinstance(props.get(name), dict):
            return Shape(props[name])
        extra = self.schema.get("additionalProperties")
        return Shape(extra) if isinstance(extra, dict) else Shape({"x-kubernetes-preserve-unknown-fields": True})

    def item(self) -> Value:
        if self.live:
            return Live(self.value).item()
        if self.schema is None:
            return UNKNOWN
        for key in ("items", "additionalProperties"):
            if isinstance(self.schema.get(key), dict):
                return Shape(self.schema[key])
        if self.schema.get("type") == "object":  # iterating an object's keys
            return Shape({"type": "string"})
        return UNKNOWN


UNKNOWN = Shape()


class Live:
    """A value at run time (lighter than a :class:`Shape`: made for every step of a walk)."""

    __slots__ = ("value",)
    live = True
    schema = None

    def __init__(self, value: Any) -> None:
        self.value = value

    def size(self) -> int:
        v = self.value
        return len(v) if isinstance(v, str | list | dict | bytes) else 1

    def field(self, name: str) -> Live:
        v = self.value
        return Live(v.get(name) if isinstance(v, dict) else None)

    def item(self) -> Live:
        v = self.value
        if isinstance(v, list | dict) and v:
            return Live(max(v, key=_live_size))
        return Live(None)


Value = Shape | Live


def _live_size(v: Any) -> int:
    return len(v) if isinstance(v, str | list | dict | bytes) else 1


def _min_size(schema: Mapping[str, Any]) -> int:
    """The fewest bytes a value of ``schema`` takes in JSON."""
    return {"string": 2, "boolean": 4, "object": 2, "array": 2}.get(str(schema.get("type")), 1)


def _schema_size(schema: Mapping[str, Any]) -> int:
    typ = schema.get("type")
    if typ == "string":
        n = schema.get("maxLength")
        return n if isinstance(n, int) else MAX_REQUEST_BYTES - 2
    if typ == "array":
        n = schema.get("maxItems")
        items = schema.get("items")
        return n if isinstance(n, int) else (MAX_REQUEST_BYTES - 2) // (
            _min_size(items if isinstance(items, dict) else {}) + 1)
    if typ == "object" or schema.get("x-kubernetes-preserve-unknown-fields"):
        n = schema.get("maxProperties")
        if isinstance(n, int):
            return n
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
            return (MAX_REQUEST_BYTES - 2) // (_min_size(extra if isinstance(extra, dict) else {}) + 4)
        props = schema.get("properties")
        return len(props) if isinstance(props, dict) else 1
    return 1


def cardinality_factor(schema: Mapping[str, Any]) -> int:
    """How many values of a child an array or map node can hold (its rules run that often)."""
    return _schema_size(schema)


_PARSER = lark.Lark(resources.files(__package__).joinpath("grammar.lark").read_text(), start="expr", parser="lalr")


@lru_cache(maxsize=2048)
def parse(expression: str) -> lark.Tree[Any] | lark.Token:
    """The expression's tree; ValueError when it does not parse here."""
    try:
        return _PARSER.parse(expression)
    except lark.exceptions.LarkError as exc:
        raise ValueError(str(exc)) from exc


def estimate(expression: str, env: Mapping[str, Shape]) -> int:
    """The cost of ``expression`` with the variables of ``env``."""
    return _Coster(env, ()).cost(parse(expression))[0]


def actual(expression: str, *values: Mapping[str, Any]) -> int:
    """The cost of ``expression`` on these variables' values (the first mapping that has a
    name gives it)."""
    return _Coster({}, values).cost(parse(expression))[0]


@lru_cache(maxsize=2048)
def size_dependent(expression: str) -> bool:
    """Whether the expression's cost may grow with its values' sizes (a comprehension, a
    traversing call or operator): only those are metered at run time."""
    sized = _MACROS | _STRING_TRAVERSING | _LIST_TRAVERSING | _REGEX
    tree = parse(expression)
    if not isinstance(tree, lark.Tree):
        return False
    for node in tree.iter_subtrees():
        if node.data in ("call", "method") and str(node.children[-2]) in sized:
            return True
        if node.data == "binary" and str(node.children[1]) in ("==", "!=", "in", "+", "<", "<=", ">", ">="):
            return True
    return False


def _traverse(size: int, factor: float = 0.1) -> int:
    return math.ceil(size * factor)


def _is_str(shape: Value) -> bool:
    if shape.live:
        return isinstance(shape.value, str)
    return shape.schema is not None and shape.schema.get("type") == "string"


class _Coster:
    def __init__(self, env: Mapping[str, Shape], live: tuple[Mapping[str, Any], ...]) -> None:
        self.env: dict[str, Value] = dict(env)
        self.live = live

    def _variable(self, name: str) -> Value:
        shape = self.env.get(name)
        if shape is not None:
            return shape
        for values in self.live:
            if name in values:
                return Live(values[name])
        return UNKNOWN

    def cost(self, node: Any) -> tuple[int, Value]:
        if isinstance(node, lark.Token):
            if node.type in ("STRING", "BYTES"):
                return 0, Shape(size_hint=max(len(node) - 2, 0))
            return 0, UNKNOWN
        data, kids = node.data, node.children
        if data == "ident":
            return 1, self._variable(str(kids[-1]))
        if data == "select":
            c, s = self.cost(kids[0])
            return c + 1, s.field(str(kids[1]))
        if data == "index":
            c, s = self.cost(kids[0])
            k, _ = self.cost(kids[1])
            return c + k + 1, s.item()
        if data in ("and_", "or_"):
            return self.cost(kids[0])[0] + self.cost(kids[1])[0], UNKNOWN
        if data == "cond":
            c0 = self.cost(kids[0])[0]
            (c1, s1), (c2, s2) = self.cost(kids[1]), self.cost(kids[2])
            return c0 + max(c1, c2), s1 if c1 >= c2 else s2
        if data in ("not_", "neg"):
            return self.cost(kids[0])[0] + 1, UNKNOWN
        if data == "binary":
            return self._binary(kids[0], str(kids[1]), kids[2])
        if data in _CREATE:
            listing = kids[-1]
            parts = list(listing.children) if isinstance(listing, lark.Tree) else []
            exprs = [e for p in parts for e in (p.children if isinstance(p, lark.Tree) and p.data in ("entry", "field")
                                                 else [p]) if not (isinstance(e, lark.Token) and e.type == "IDENT")]
            return _CREATE[data] + sum(self.cost(e)[0] for e in exprs), Shape(size_hint=len(parts))
        if data == "call":
            return self._call(None, str(kids[0]), _args(kids[1]))
        if data == "method":
            return self._call(kids[0], str(kids[1]), _args(kids[2]))
        return sum(self.cost(k)[0] for k in kids if k is not None), UNKNOWN

    def _binary(self, left: Any, op: str, right: Any) -> tuple[int, Value]:
        (cl, sl), (cr, sr) = self.cost(left), self.cost(right)
        base = cl + cr + 1
        if op in ("==", "!="):
            return base + (_traverse(min(sl.size(), sr.size())) if _is_str(sl) or _is_str(sr) else 0), UNKNOWN
        if op == "in":
            return base + (sr.size() if not (sr.schema or {}).get("type") == "object" else 0), UNKNOWN
        if op == "+" and (_is_str(sl) or _is_str(sr)):
            size = sl.size() + sr.size()
            return base + _traverse(size), Shape({"type": "string"}, size_hint=size)
        if op in ("<", "<=", ">", ">=") and (_is_str(sl) or _is_str(sr)):
            return base + _traverse(min(sl.size(), sr.size())), UNKNOWN
        return base, UNKNOWN

    def _call(self, target: Any, name: str, args: list[Any]) -> tuple[int, Value]:
        if target is not None and name in _MACROS and len(args) >= 2 and _is_ident(args[0]):
            return self._comprehension(target, name, str(args[0].children[-1]), args[1:])
        if name == "has" and target is None:
            return sum(self.cost(a)[0] for a in args), UNKNOWN
        tc, ts = self.cost(target) if target is not None else (0, UNKNOWN)
        costs = [self.cost(a) for a in args]
        total = tc + sum(c for c, _ in costs) + 1
        receiver = ts if target is not None else (costs[0][1] if costs else UNKNOWN)
        if name in _REGEX:
            pattern = costs[-1][1] if costs else UNKNOWN
            return total + _traverse(receiver.size()) * _traverse(pattern.size(), 0.25), Shape(
                size_hint=receiver.size())
        if name in _LIST_TRAVERSING and not _is_str(receiver):
            return total + receiver.size(), receiver.item()
        if name in ("startsWith", "endsWith") and costs:  # the prefix is traversed, not the string
            return total + _traverse(costs[0][1].size()), UNKNOWN
        if name == "contains" and costs and _is_str(receiver):
            return total + _traverse(receiver.size() * costs[0][1].size()), UNKNOWN
        if name in _STRING_TRAVERSING:
            size = max([receiver.size(), *(s.size() for _, s in costs)])
            return total + _traverse(size), Shape(size_hint=receiver.size())
        return total, UNKNOWN

    def _comprehension(self, target: Any, name: str, var: str, bodies: list[Any]) -> tuple[int, Value]:
        tc, ts = self.cost(target)
        n = ts.size()
        saved = self.env.get(var)
        self.env[var] = ts.item()
        try:
            body = sum(self.cost(b)[0] for b in bodies)
        finally:
            if saved is None:
                self.env.pop(var, None)
            else:
                self.env[var] = saved
        # cel-go's expansions: the loop condition and ``__result__ && body`` (all, exists), or
        # ``__result__ + [body]`` with its list literal (map, filter).
        step = {"map": 12, "filter": 13}.get(name, 3)
        result = Shape(size_hint=n) if name in ("map", "filter") else UNKNOWN
        return tc + 1 + n * (body + step), result


def _args(node: Any) -> list[Any]:
    return list(node.children) if isinstance(node, lark.Tree) else []


def _is_ident(node: Any) -> bool:
    return isinstance(node, lark.Tree) and node.data == "ident"
