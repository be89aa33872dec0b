"""A well-defined subset of PromQL, parsed with lark into typed nodes.

What it accepts (everything Prometheus would read the same way):

* instant vector selectors ``name``, ``name{k="v", k!="v", k=~"re", k!~"re"}``, ``{__name__="name"}``,
  with an optional ``offset 5m`` (or ``offset -5m``);
* range selectors ``name{...}[5m]`` (``offset`` after the range), only as the argument of a
  range function: ``rate``, ``increase``, ``avg_over_time``, ``max_over_time``,
  ``min_over_time``, ``sum_over_time``, ``count_over_time``, ``last_over_time``;
* aggregations ``sum``, ``avg``, ``max``, ``min``, ``count``, ``group``, ``stddev``,
  ``stdvar`` and, with a number first, ``topk``, ``bottomk``, ``quantile``, each with ``by
  (labels)`` or ``without (labels)`` before or after the argument;
* arithmetic ``+ - * / %`` and comparisons ``== != > < >= <=`` (``bool`` turns a comparison's
  filter into 0/1) between a vector and a scalar or between two vectors; vector matching
  ``on (labels)`` / ``ignoring (labels)``, many-to-one with ``group_left (labels)`` and
  one-to-many with ``group_right (labels)``; the set operators ``and``, ``or``, ``unless``
  (with ``on``/``ignoring``); numbers, parentheses and a unary minus.

Anything else (subqueries, ``@``, other functions) is a syntax error that names its line and
column, as is a type error (``rate(x)`` of an instant vector): a rule is refused when it is
written, not when it first runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

RANGE_FUNCTIONS = frozenset({"rate", "increase", "avg_over_time", "max_over_time", "min_over_time",
                             "sum_over_time", "count_over_time", "last_over_time"})
AGGREGATIONS = frozenset({"sum", "avg", "max", "min", "count", "group", "stddev", "stdvar"})
PARAM_AGGREGATIONS = frozenset({"topk", "bottomk", "quantile"})
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")

GRAMMAR = r"""
?start: expr
?expr: or_expr
?or_expr: and_expr | or_expr OR [BOOL] [matching] and_expr -> binary
?and_expr: cmp_expr | and_expr (AND | UNLESS) [BOOL] [matching] cmp_expr -> binary
?cmp_expr: add_expr | cmp_expr CMP [BOOL] [matching] add_expr -> binary
?add_expr: mul_expr | add_expr ADD [BOOL] [matching] mul_expr -> binary
?mul_expr: unary | mul_expr MUL [BOOL] [matching] unary -> binary
?unary: atom | SUB atom -> negate
?atom: NUMBER -> number
     | selector
     | IDENT "(" expr ")" -> call
     | IDENT grouping "(" expr ")" -> aggregate_pre
     | IDENT "(" expr ")" grouping -> aggregate_post
     | IDENT "(" expr "," expr ")" -> param_call
     | IDENT grouping "(" expr "," expr ")" -> param_aggregate_pre
     | IDENT "(" expr "," expr ")" grouping -> param_aggregate_post
     | "(" expr ")"
selector: IDENT matchers? range? offset?
        | matchers range? offset?
matchers: "{" [matcher ("," matcher)* ","?] "}"
matcher: IDENT MATCH_OP STRING
range: "[" DURATION "]"
offset: OFFSET [SUB] DURATION
grouping: (BY | WITHOUT) label_list
matching: (ON | IGNORING) label_list [group]
group: (GROUP_LEFT | GROUP_RIGHT) [label_list]
label_list: "(" [IDENT ("," IDENT)*] ")"

OR: "or"
AND: "and"
UNLESS: "unless"
BY: "by"
WITHOUT: "without"
BOOL: "bool"
ON: "on"
IGNORING: "ignoring"
GROUP_LEFT: "group_left"
GROUP_RIGHT: "group_right"
OFFSET: "offset"
CMP: "==" | "!=" | ">=" | "<=" | ">" | "<"
ADD: "+" | "-"
SUB: "-"
MUL: "*" | "/" | "%"
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


# -- the nodes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        have = labels.get(self.label, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        assert self.regex is not None
        hit = self.regex.fullmatch(have) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True, slots=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...]
    range: float | None  # seconds, for a range selector
    offset: float = 0.0  # seconds into the past (negative: the future) the selector reads


@dataclass(frozen=True, slots=True)
class Number:
    value: float


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    arg: Selector


@dataclass(frozen=True, slots=True)
class Aggregate:
    op: str
    arg: Expr
    labels: tuple[str, ...]
    without: bool
    param: Expr | None = None  # topk's k, quantile's phi


ONE_TO_ONE, MANY_TO_ONE, ONE_TO_MANY = "one-to-one", "many-to-one", "one-to-many"


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """How two vectors' samples pair up: on the ``labels`` (``on``) or on all labels but them
    and the name (``ignoring``); ``include`` are the labels ``group_left``/``group_right``
    copy from the "one" side."""

    on: bool = False
    labels: tuple[str, ...] = ()
    card: str = ONE_TO_ONE
    include: tuple[str, ...] = ()


DEFAULT_MATCHING = VectorMatching()


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    matching: VectorMatching = DEFAULT_MATCHING
    bool_: bool = False  # a comparison answering 0/1 instead of filtering


@dataclass(frozen=True, slots=True)
class Negate:
    arg: Expr


Expr = Selector | Number | Call | Aggregate | Binary | Negate


def is_scalar(e: Expr) -> bool:
    return isinstance(e, Number) or (isinstance(e, Negate) and is_scalar(e.arg)) or (
        isinstance(e, Binary) and is_scalar(e.left) and is_scalar(e.right))


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


def _instant(e: Expr, where: Token, what: str) -> Expr:
    if isinstance(e, Selector) and e.range is not None:
        raise _Fail(f"{what} needs an instant vector, not a range vector (a range is only the argument of "
                    f"{', '.join(sorted(RANGE_FUNCTIONS))})", where)
    return e


@dataclass(frozen=True, slots=True)
class _Offset:
    seconds: float


@v_args(inline=True)
class _Build(Transformer[Token, Expr]):
    def number(self, tok: Token) -> Number:
        return Number(float(tok))

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

    def range(self, tok: Token) -> float:
        seconds = parse_duration(str(tok))
        if seconds <= 0:
            raise _Fail("a range must be longer than zero", tok)
        return seconds

    def offset(self, _kw: Token, sign: Token | None, tok: Token) -> _Offset:
        seconds = parse_duration(str(tok))
        return _Offset(-seconds if sign is not None else seconds)

    def selector(self, *parts: Any) -> Selector:
        name = ""
        matchers: tuple[Matcher, ...] = ()
        rng: float | None = None
        offset = 0.0
        first: Any = None
        for p in parts:
            if isinstance(p, Token):
                name, first = str(p), first or p
            elif isinstance(p, tuple):
                matchers = p
            elif isinstance(p, float):
                rng = p
            elif isinstance(p, _Offset):
                offset = p.seconds
        named = [m for m in matchers if m.label == "__name__"]
        if named:
            if name or named[0].op != "=" or len(named) > 1:
                raise _Fail("the metric name is given once, as name or {__name__=\"name\"}", first or parts[0])
            name = named[0].value
            matchers = tuple(m for m in matchers if m.label != "__name__")
        if not name:
            raise _Fail("a selector needs a metric name", first)
        return Selector(name, matchers, rng, offset)

    def call(self, fn: Token, arg: Expr) -> Expr:
        if str(fn) in AGGREGATIONS:
            return self._aggregate(fn, (False, ()), arg)
        if str(fn) in PARAM_AGGREGATIONS:
            raise _Fail(f"{fn}() needs a parameter first, as in {fn}(3, metric)", fn)
        if str(fn) not in RANGE_FUNCTIONS:
            known = sorted(RANGE_FUNCTIONS | AGGREGATIONS | PARAM_AGGREGATIONS)
            raise _Fail(f"unknown function {str(fn)!r} (supported: {', '.join(known)})", fn)
        if not isinstance(arg, Selector) or arg.range is None:
            raise _Fail(f"{fn}() needs a range vector such as metric[5m]", fn)
        return Call(str(fn), arg)

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

    def param_call(self, fn: Token, param: Expr, arg: Expr) -> Aggregate:
        return self._aggregate(fn, (False, ()), arg, param)

    def param_aggregate_pre(self, fn: Token, grouping: tuple[bool, tuple[str, ...]], param: Expr,
                            arg: Expr) -> Aggregate:
        return self._aggregate(fn, grouping, arg, param)

    def param_aggregate_post(self, fn: Token, param: Expr, arg: Expr,
                             grouping: tuple[bool, tuple[str, ...]]) -> Aggregate:
        return self._aggregate(fn, grouping, arg, param)

    def aggregate_pre(self, fn: Token, grouping: tuple[bool, tuple[str, ...]], arg: Expr) -> Aggregate:
        return self._aggregate(fn, grouping, arg)

    def aggregate_post(self, fn: Token, arg: Expr, grouping: tuple[bool, tuple[str, ...]]) -> Aggregate:
        return self._aggregate(fn, grouping, arg)

    def _aggregate(self, fn: Token, grouping: tuple[bool, tuple[str, ...]], arg: Expr,
                   param: Expr | None = None) -> Aggregate:
        if param is None and str(fn) not in AGGREGATIONS:
            raise _Fail(f"{str(fn)!r} is not an aggregation (supported: {', '.join(sorted(AGGREGATIONS))})", fn)
        if param is not None:
            if str(fn) not in PARAM_AGGREGATIONS:
                raise _Fail(f"{str(fn)!r} takes no parameter (those that do: "
                            f"{', '.join(sorted(PARAM_AGGREGATIONS))})", fn)
            if not is_scalar(param):
                raise _Fail(f"{fn}()'s first argument is a number", fn)
        if is_scalar(arg):
            raise _Fail(f"{fn}() needs a vector, not a number", fn)
        return Aggregate(str(fn), _instant(arg, fn, str(fn)), grouping[1], grouping[0], param)

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


_MODIFIERS = frozenset({"BOOL", "ON", "IGNORING", "GROUP_LEFT", "GROUP_RIGHT", "OFFSET"})


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
        if isinstance(expr, Selector) and expr.range is not None:
            raise PromQLError("a range vector is only the argument of a range function such as rate(x[5m])", 1, 1)
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
