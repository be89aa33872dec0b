"""PromQL's syntax tree: what :func:`bosun.monitoring.promql.parse` builds and the evaluator
reads, with each node's value type (:func:`kind`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bosun.monitoring.promql_signatures import FUNCTIONS, MATRIX, SCALAR, STRING, VECTOR


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


At = float | str | None  # a Unix time, "start" or "end" (of the query), or None: each step's time


@dataclass(frozen=True, slots=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...]
    range: float | None  # seconds, for a range selector
    offset: float = 0.0  # seconds into the past (negative: the future) the selector reads
    at: At = None


@dataclass(frozen=True, slots=True)
class Subquery:
    expr: Expr
    range: float
    step: float | None  # None: the history's resolution
    offset: float = 0.0
    at: At = None


@dataclass(frozen=True, slots=True)
class Number:
    value: float


@dataclass(frozen=True, slots=True)
class String:
    value: str


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]


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


Expr = Selector | Subquery | Number | String | Call | Aggregate | Binary | Negate


def kind(e: Expr) -> str:
    """The expression's value type: scalar, instant vector, range vector or string."""
    if isinstance(e, Number):
        return SCALAR
    if isinstance(e, String):
        return STRING
    if isinstance(e, Selector):
        return VECTOR if e.range is None else MATRIX
    if isinstance(e, Subquery):
        return MATRIX
    if isinstance(e, Call):
        return FUNCTIONS[e.function].returns
    if isinstance(e, Negate):
        return kind(e.arg)
    if isinstance(e, Binary):
        return SCALAR if kind(e.left) == SCALAR and kind(e.right) == SCALAR else VECTOR
    return VECTOR


def is_scalar(e: Expr) -> bool:
    return kind(e) == SCALAR
