"""PromQL, parsed with lark into typed nodes.

What it accepts (everything Prometheus would read the same way):

* instant vector selectors ``name``, ``name{k="v", k!="v", k=~"re", k!~"re"}``, ``{__name__="name"}``;
  range selectors ``name{...}[5m]``; subqueries ``expr[30m:1m]`` (``[30m:]``: the history's
  resolution as the step); each with the modifiers ``offset 5m`` (or ``-5m``) and ``@ <unix
  time>``, ``@ start()``, ``@ end()``, in either order;
* the functions of :mod:`.promql_signatures` (Prometheus' list without the native-histogram
  and experimental ones), type-checked: ``rate(x)`` of an instant vector is refused;
* aggregations ``sum``, ``avg``, ``max``, ``min``, ``count``, ``group``, ``stddev``,
  ``stdvar``, with a number first ``topk``, ``bottomk``, ``quantile``, and with a label name
  first ``count_values``, each with ``by (labels)`` or ``without (labels)`` before or after
  the argument;
* arithmetic ``+ - * / % ^ atan2`` and comparisons ``== != > < >= <=`` (``bool`` turns a
  comparison's filter into 0/1) between vectors and scalars; vector matching ``on (labels)``
  / ``ignoring (labels)``, ``group_left (labels)``, ``group_right (labels)``; the set
  operators ``and``, ``or``, ``unless``; numbers (``Inf`` and ``NaN`` too), strings
  (function arguments), parentheses and a unary minus.

Anything else is a syntax error that names its line and column, as is a type error: a rule
is refused when it is written, not when it first runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from bosun.monitoring.promql_nodes import (
    DEFAULT_MATCHING,
    MANY_TO_ONE,
    ONE_TO_MANY,
    ONE_TO_ONE,
    Aggregate,
    At,
    Binary,
    Call,
    Expr,
    Matcher,
    Negate,
    Number,
    Selector,
    String,
    Subquery,
    VectorMatching,
    is_scalar,
    kind,
)
from bosun.monitoring.promql_signatures import FUNCTIONS, MATRIX, STRING, VECTOR

__all__ = ["AGGREGATIONS", "COMPARISONS", "DEFAULT_MATCHING", "MANY_TO_ONE", "ONE_TO_MANY", "ONE_TO_ONE",
           "PARAM_AGGREGATIONS", "SET_OPERATORS", "Aggregate", "At", "Binary", "Call", "Expr", "Matcher", "Negate",
           "Number", "PromQLError", "Selector", "String", "Subquery", "VectorMatching", "is_scalar", "kind", "parse",
           "parse_duration"]

AGGREGATIONS = frozenset({"sum", "avg", "max", "min", "count", "group", "stddev", "stdvar"})
PARAM_AGGREGATIONS = frozenset({"topk", "bottomk", "quantile", "count_values"})
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

GRAMMAR = r"""
?start: expr
?expr: or_expr
?or_expr: and_expr | or_expr OR [BOOL] [matching] and_expr -> binary
?and_expr: cmp_expr | and_expr (AND | UNLESS) [BOOL] [matching] cmp_expr -> binary
?cmp_expr: add_expr | cmp_expr CMP [BOOL] [matching] add_expr -> binary
?add_expr: mul_expr | add_expr ADD [BOOL] [matching] mul_expr -> binary
?mul_expr: unary | mul_expr (MUL | ATAN2) [BOOL] [matching] unary -> binary
?unary: pow_expr | SUB unary -> negate
?pow_expr: atom | atom POW [BOOL] [matching] unary -> binary
?atom: NUMBER -> number
     | STRING -> string
     | selector
     | call
     | call subquery modifiers -> subquery_of
call: IDENT "(" [arg ("," arg)*] ")" -> call
    | IDENT grouping "(" arg ("," arg)* ")" -> aggregate_pre
    | IDENT "(" arg ("," arg)* ")" grouping -> aggregate_post
    | "(" expr ")" -> paren
?arg: expr
selector: IDENT matchers? bracket? modifiers
        | matchers bracket? modifiers
?bracket: range | subquery
matchers: "{" [matcher ("," matcher)* ","?] "}"
matcher: IDENT MATCH_OP STRING
range: "[" DURATION "]"
subquery: "[" DURATION ":" [DURATION] "]"
modifiers: (offset | at)*
offset: OFFSET [SUB] DURATION
at: AT (NUMBER | SUB NUMBER | IDENT "(" ")")
grouping: (BY | WITHOUT) label_list
matching: (ON | IGNORING) label_list [group]
group: (GROUP_LEFT | GROUP_RIGHT) [label_list]
label_list: "(" [IDENT ("," IDENT)*] ")"

OR: "or"
AND: "and"
UNLESS: "unless"
ATAN2: "atan2"
BY: "by"
WITHOUT: "without"
BOOL: "bool"
ON: "on"
IGNORING: "ignoring"
GROUP_LEFT: "group_left"
GROUP_RIGHT: "group_right"
OFFSET: "offset"
AT: "@"
CMP: "==" | "!=" | ">=" | "<=" | ">" | "<"
ADD: "+" | "-"
SUB: "-"
MUL: "*" | "/" | "%"
POW: "^"
MATCH_OP: "=~" | "!~" | "!=" | "="
IDENT: /[a-zA-Z_:][a-zA-Z0-9_:]*/
NUMBER: /[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/ | /\.[0-9]+/
DURATION: /([0-9]+(ms|s|m|h|d|w|y))+/
STRING: /"(?:[^"\\]|\\.)*"/ | /'(?:[^'\\]|\\.)*'/
%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)


class PromQLError(ValueError):
    """A syntax or type error, with its 1-based line and column in the expression."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.reason, self.line, self.column = message, line, column


def parse_duration(text: str) -> float:
    return sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


class _Fail(Exception):
    def __init__(self, message: str, token: Any) -> None:
        super().__init__(message)
        self.message = message
        self.line = getattr(token, "line", 1) or 1
        self.column = getattr(token, "column", 1) or 1


_ORDINAL = ("first", "second", "third", "fourth", "fifth", "sixth")


def _a(what: str) -> str:
    return ("an " if what[0] in "aeiou" else "a ") + what


def _instant(e: Expr, where: Token, what: str) -> Expr:
    got = kind(e)
    if got == MATRIX:
        raise _Fail(f"{what} needs an instant vector, not a range vector (a range is only the argument of "
                    "a function such as rate(x[5m]))", where)
    if got == STRING:
        raise _Fail(f"{what} needs an instant vector or a number, not a string", where)
    return e


@dataclass(frozen=True, slots=True)
class _Offset:
    seconds: float
    where: Token


@dataclass(frozen=True, slots=True)
class _At:
    at: float | str
    where: Token


@dataclass(frozen=True, slots=True)
class _Mods:
    offset: float
    at: At


@dataclass(frozen=True, slots=True)
class _Range:
    seconds: float


@dataclass(frozen=True, slots=True)
class _SubRange:
    seconds: float
    step: float | None


def _seconds(tok: Token, what: str) -> float:
    seconds = parse_duration(str(tok))
    if seconds <= 0:
        raise _Fail(f"{what} must be longer than zero", tok)
    return seconds


@v_args(inline=True)
class _Build(Transformer[Token, Expr]):
    def number(self, tok: Token) -> Number:
        return Number(float(tok))

    def string(self, tok: Token) -> String:
        return String(_unquote(str(tok)))

    def paren(self, e: Expr) -> Expr:
        return e

    def matcher(self, label: Token, op: Token, value: Token) -> Matcher:
        text = _unquote(str(value))
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(text)
            except re.error as e:
                raise _Fail(f"invalid regular expression {text!r}: {e}", value) from None
        return Matcher(str(label), str(op), text, regex)

    def matchers(self, *items: Matcher | None) -> tuple[Matcher, ...]:
        return tuple(m for m in items if m is not None)

    def range(self, tok: Token) -> _Range:
        return _Range(_seconds(tok, "a range"))

    def subquery(self, rng: Token, step: Token | None) -> _SubRange:
        return _SubRange(_seconds(rng, "a subquery's range"), None if step is None else _seconds(step, "a step"))

    def offset(self, kw: Token, sign: Token | None, tok: Token) -> _Offset:
        seconds = parse_duration(str(tok))
        return _Offset(-seconds if sign is not None else seconds, kw)

    def at(self, kw: Token, *parts: Token) -> _At:
        if parts[-1].type == "IDENT":
            if str(parts[-1]) not in ("start", "end"):
                raise _Fail(f"@ takes a Unix time, start() or end(), not {parts[-1]}()", parts[-1])
            return _At(str(parts[-1]), kw)
        value = float(parts[-1])
        return _At(-value if len(parts) == 2 else value, kw)

    def modifiers(self, *items: _Offset | _At) -> tuple[Token | None, _Mods]:
        offsets = [i.seconds for i in items if isinstance(i, _Offset)]
        ats = [i.at for i in items if isinstance(i, _At)]
        if len(offsets) > 1 or len(ats) > 1:
            raise _Fail("offset and @ are each given at most once", items[-1].where)
        return None, _Mods(offsets[0] if offsets else 0.0, ats[0] if ats else None)

    def selector(self, *parts: Any) -> Selector | Subquery | Number:
        name = ""
        matchers: tuple[Matcher, ...] = ()
        bracket: _Range | _SubRange | None = None
        mods = _Mods(0.0, None)
        first: Any = None
        for p in parts:
            if isinstance(p, Token):
                name, first = str(p), first or p
            elif isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], _Mods):
                mods = p[1]
            elif isinstance(p, tuple):
                matchers = p
            elif isinstance(p, _Range | _SubRange):
                bracket = p
        named = [m for m in matchers if m.label == "__name__"]
        if named:
            if name or named[0].op != "=" or len(named) > 1:
                raise _Fail("the metric name is given once, as name or {__name__=\"name\"}", first or parts[0])
            name = named[0].value
            matchers = tuple(m for m in matchers if m.label != "__name__")
        if not name:
            raise _Fail("a selector needs a metric name", first)
        if name.lower() in ("inf", "nan") and not matchers:  # numbers, as in Prometheus
            if bracket is not None or mods != _Mods(0.0, None):
                raise _Fail(f"{name} is a number: a range, offset and @ are for selectors", first)
            return Number(float(name))
        if isinstance(bracket, _SubRange):
            return Subquery(Selector(name, matchers, None), bracket.seconds, bracket.step, mods.offset, mods.at)
        rng = bracket.seconds if bracket is not None else None
        return Selector(name, matchers, rng, mods.offset, mods.at)

    def subquery_of(self, e: Expr, sub: _SubRange, mods: tuple[Token | None, _Mods]) -> Subquery:
        if kind(e) != VECTOR:
            raise _Fail(f"a subquery needs an instant vector expression, not {_a(kind(e))}", None)
        return Subquery(e, sub.seconds, sub.step, mods[1].offset, mods[1].at)

    def call(self, fn: Token, *args: Expr | None) -> Expr:
        given = tuple(a for a in args if a is not None)
        name = str(fn)
        if name in AGGREGATIONS or name in PARAM_AGGREGATIONS:
            return self._aggregate(fn, (False, ()), given)
        sig = FUNCTIONS.get(name)
        if sig is None:
            raise _Fail(f"unknown function {name!r}", fn)
        least = len(sig.args) - sig.optional
        if len(given) < least or (len(given) > len(sig.args) and not sig.variadic):
            many = f"{least}" if not sig.optional else f"{least} to {len(sig.args)}"
            raise _Fail(f"{name}() takes {many}{' or more' if sig.variadic else ''} arguments, not {len(given)}", fn)
        for i, a in enumerate(given):
            want, got = sig.args[min(i, len(sig.args) - 1)], kind(a)
            if got != want:
                hint = " such as metric[5m]" if want == MATRIX else ""
                raise _Fail(f"{name}() needs {_a(want)}{hint} as its {_ORDINAL[min(i, 5)]} argument, not "
                            f"{_a(got)}", fn)
        _check_labels(name, given, fn)
        return Call(name, given)

    def label_list(self, *labels: Token | None) -> tuple[str, ...]:
        return tuple(str(t) for t in labels if t is not None)

    def grouping(self, kind: Token, labels: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
        return kind == "without", labels

    def group(self, side: Token, labels: tuple[str, ...] | None) -> tuple[Token, tuple[str, ...]]:
        return side, labels or ()

    def matching(self, kind: Token, labels: tuple[str, ...],
                 group: tuple[Token, tuple[str, ...]] | None) -> tuple[Token, VectorMatching]:
        if group is None:
            return kind, VectorMatching(kind == "on", labels)
        side, include = group
        if kind == "on":
            both = sorted(set(labels) & set(include))
            if both:
                raise _Fail(f"label {both[0]!r} must not occur in on() and {side}() at once", side)
        card = MANY_TO_ONE if side == "group_left" else ONE_TO_MANY
        return side, VectorMatching(kind == "on", labels, card, include)

    def aggregate_pre(self, fn: Token, grouping: tuple[bool, tuple[str, ...]], *args: Expr) -> Aggregate:
        return self._aggregate(fn, grouping, args)

    def aggregate_post(self, fn: Token, *rest: Any) -> Aggregate:
        return self._aggregate(fn, rest[-1], rest[:-1])

    def _aggregate(self, fn: Token, grouping: tuple[bool, tuple[str, ...]], args: tuple[Expr, ...]) -> Aggregate:
        name = str(fn)
        if name not in AGGREGATIONS and name not in PARAM_AGGREGATIONS:
            raise _Fail(f"{name!r} is not an aggregation (supported: "
                        f"{', '.join(sorted(AGGREGATIONS | PARAM_AGGREGATIONS))})", fn)
        if name in PARAM_AGGREGATIONS and len(args) == 1:
            raise _Fail(f"{name}() needs a parameter first, as in {name}(3, metric)", fn)
        if name in AGGREGATIONS and len(args) > 1:
            raise _Fail(f"{name!r} takes no parameter (those that do: {', '.join(sorted(PARAM_AGGREGATIONS))})",
                        fn)
        if len(args) != (2 if name in PARAM_AGGREGATIONS else 1):
            raise _Fail(f"{name}() takes {2 if name in PARAM_AGGREGATIONS else 1} arguments, not {len(args)}", fn)
        param, arg = (args[0], args[1]) if len(args) == 2 else (None, args[0])
        if name == "count_values":
            if not isinstance(param, String):
                raise _Fail("count_values()'s first argument is the label to write the values to, a string", fn)
            if not _LABEL.match(param.value):
                raise _Fail(f"count_values(): invalid label name {param.value!r}", fn)
        elif param is not None and not is_scalar(param):
            raise _Fail(f"{fn}()'s first argument is a number", fn)
        if is_scalar(arg):
            raise _Fail(f"{fn}() needs a vector, not a number", fn)
        return Aggregate(name, _instant(arg, fn, name), grouping[1], grouping[0], param)

    def binary(self, left: Expr, op: Token, bool_: Token | None, matching: tuple[Token, VectorMatching] | None,
               right: Expr) -> Binary:
        _instant(left, op, f"operator {op}")
        _instant(right, op, f"operator {op}")
        if str(op) in SET_OPERATORS and (is_scalar(left) or is_scalar(right)):
            raise _Fail(f"operator {op} works between two vectors, not numbers", op)
        if bool_ is not None and str(op) not in COMPARISONS:
            raise _Fail("bool is only for comparison operators", bool_)
        if matching is None:
            return Binary(str(op), left, right, DEFAULT_MATCHING, bool_ is not None)
        where, how = matching
        if is_scalar(left) or is_scalar(right):
            raise _Fail("vector matching (on, ignoring, group_left, group_right) is only between two vectors", where)
        if str(op) in SET_OPERATORS and how.card != ONE_TO_ONE:
            raise _Fail(f"{where} is not allowed with operator {op} (set operators match many-to-many)", where)
        return Binary(str(op), left, right, how, bool_ is not None)

    def negate(self, op: Token, arg: Expr) -> Negate:
        return Negate(_instant(arg, op, "unary minus"))


def _check_labels(fn: str, args: tuple[Expr, ...], where: Token) -> None:
    """label_replace's and label_join's label names and regular expression, checked when written."""
    if fn not in ("label_replace", "label_join"):
        return
    strings = [a.value for a in args[1:] if isinstance(a, String)]
    labels = [strings[0]] + (strings[2:] if fn == "label_join" else [])  # label_replace's source may be any
    for label in labels:
        if not _LABEL.match(label):
            raise _Fail(f"{fn}(): invalid label name {label!r}", where)
    if fn == "label_replace":
        try:
            re.compile(strings[3])
        except re.error as e:
            raise _Fail(f"label_replace(): invalid regular expression {strings[3]!r}: {e}", where) from None


_MODIFIERS = frozenset({"BOOL", "ON", "IGNORING", "GROUP_LEFT", "GROUP_RIGHT", "OFFSET", "AT"})


def _expected(e: UnexpectedInput) -> str:
    names = sorted(getattr(e, "expected", None) or getattr(e, "allowed", None) or [])
    if not names:
        return ""
    pretty = {"IDENT": "a name", "NUMBER": "a number", "STRING": "a quoted string", "DURATION": "a duration",
              "RPAR": "')'", "LPAR": "'('", "RBRACE": "'}'", "LBRACE": "'{'", "RSQB": "']'", "LSQB": "'['",
              "COMMA": "','", "SUB": "'-'", "MATCH_OP": "a matcher (= != =~ !~)", "$END": "the end"}
    # The modifiers (bool, on, offset...) are optional: naming them would hide what is missing.
    shown = sorted({pretty.get(n, n.lower()) for n in names if n not in _MODIFIERS})
    return f"; expected {' or '.join(shown[:6])}" if len(shown) <= 6 else ""


def parse(text: str) -> Expr:
    """An expression's tree, or :class:`PromQLError` naming the line and column."""
    if not text.strip():
        raise PromQLError("empty expression", 1, 1)
    try:
        expr = _Build().transform(_PARSER.parse(text))
        if kind(expr) == MATRIX:
            raise PromQLError("a range vector is only the argument of a range function such as rate(x[5m])", 1, 1)
        if kind(expr) == STRING:
            raise PromQLError("a string is only the argument of a function such as label_replace()", 1, 1)
        return expr
    except VisitError as e:
        inner = e.orig_exc
        if isinstance(inner, _Fail):
            raise PromQLError(inner.message, inner.line, inner.column) from None
        raise
    except UnexpectedEOF as e:
        lines = text.splitlines() or [""]
        raise PromQLError(f"unexpected end of expression{_expected(e)}", len(lines), len(lines[-1]) + 1) from None
    except UnexpectedToken as e:
        tok = e.token
        what = "end of expression" if tok.type == "$END" else repr(str(tok))
        line, column = e.line, e.column
        if tok.type == "$END":
            lines = text.splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
        raise PromQLError(f"unexpected {what}{_expected(e)}", line, column) from None
    except UnexpectedCharacters as e:
        raise PromQLError(f"unexpected character {e.char!r}", e.line, e.column) from None
