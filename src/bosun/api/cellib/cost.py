"""The cost of a CEL expression, as cel-go's estimator and Kubernetes' limits count it: the
``common-expression-language`` interpreter neither estimates nor meters cost, so expressions
are parsed here (:file:`grammar.lark`, with ``lark``) and priced by a plan compiled once per
expression (:mod:`.costplan`).

One plan serves both uses. Statically (a CRD is written) the sizes come from the schema:
``maxLength``, ``maxItems``, ``maxProperties``, or when those are missing, as upstream, as
many as fit in a request of 3 MiB (a string of 3 MiB; that many bytes over the fewest an item
takes, plus a comma, for a list). At run time the sizes are those of the values at hand.

The model is cel-go's for what rules commonly do: 1 per variable, field, index, operator and
call; comprehensions (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) cost their
range plus size x (body + 3, or + 12 and 13 for map and filter, which build a list each
step); string traversals (``==`` and comparisons of strings, ``startsWith`` of its prefix,
``contains`` of string x substring, ``+``, the string and regex libraries) 0.1 per
character; ``matches`` and ``find`` string x 0.1 x pattern x 0.25; ``in`` a list and the list
library 1 per element; list, map and message literals 10, 30 and 40.

Approximated: ``&&`` and ``||`` are priced at both sides and ``?:`` at its costlier branch; a
call this model does not know costs 1 plus its arguments; at run time a comprehension's body
is priced once, on the range's largest element, times the range's size, and short-circuits
are not credited, so the run-time figure is an upper bound of what cel-go meters rather than
its count. An expression whose cost cannot grow with its values (no comprehension, traversing
call or comparison) is priced once, and a CRD whose rules cannot together pass the budget is
not metered at all (:func:`bosun.api.crd.cel.needs_metering`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import lark

from bosun.api.cellib.costplan import LIST_TRAVERSING, MACROS, REGEX, STRING_TRAVERSING, Scope, Step, plan
from bosun.api.cellib.shapes import Shape, schema_size

PER_CALL_LIMIT = 1_000_000  # upstream's PerCallLimit (one evaluation)
RUNTIME_BUDGET = 10_000_000  # upstream's RuntimeCELCostBudget (all rules of one object)
STATIC_LIMIT = 10_000_000  # StaticEstimatedCostLimit (one rule, times its cardinality)
STATIC_CRD_LIMIT = 100_000_000  # StaticEstimatedCRDCostLimit (every rule of a schema)


def cardinality_factor(schema: Mapping[str, Any]) -> int:
    """How many values of a child an array or map node can hold (its rules run that often)."""
    return schema_size(schema)


_PARSER = lark.Lark(resources.files(__package__).joinpath("grammar.lark").read_text(), start="expr", parser="lalr")


@lru_cache(maxsize=2048)
def parse(expression: str) -> lark.Tree[Any] | lark.Token:
    """The expression's tree; ValueError when it does not parse here."""
    try:
        return _PARSER.parse(expression)
    except lark.exceptions.LarkError as exc:
        raise ValueError(str(exc)) from exc


@lru_cache(maxsize=2048)
def _plan(expression: str) -> Step:
    return plan(parse(expression))


def estimate(expression: str, env: Mapping[str, Shape]) -> int:
    """The cost of ``expression`` with the variables of ``env``."""
    return _plan(expression)(Scope(env, ()))[0]


def actual(expression: str, *values: Mapping[str, Any]) -> int:
    """The cost of ``expression`` on these variables' values (the first mapping that has a
    name gives it)."""
    return _plan(expression)(Scope({}, values))[0]


@lru_cache(maxsize=2048)
def size_dependent(expression: str) -> bool:
    """Whether the expression's cost may grow with its values' sizes (a comprehension, a
    traversing call or operator): only those are metered at run time."""
    sized = MACROS | STRING_TRAVERSING | LIST_TRAVERSING | REGEX
    tree = parse(expression)
    if not isinstance(tree, lark.Tree):
        return False
    for node in tree.iter_subtrees():
        if node.data in ("call", "method") and str(node.children[-2]) in sized:
            return True
        if node.data == "binary" and str(node.children[1]) in ("==", "!=", "in", "+", "<", "<=", ">", ">="):
            return True
    return False


