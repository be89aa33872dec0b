"""CEL validation rules (``x-kubernetes-validations``) of custom resource schemas, and the
compile and evaluate helpers every CEL user of the server shares (the admission policies of
:mod:`bosun.api.admission.policy` too).

Evaluated with ``common-expression-language`` (PyPI; bindings of the Rust ``cel``
interpreter): it is maintained, compiles an expression once into a reusable program, and has
CEL's standard macros and functions (``has``, ``all``, ``exists``, ``size``, ``matches``,
``startsWith``...). Kubernetes' extension libraries (``quantity()``, ``url()``, ``ip()``,
``isSorted()``, ``format.dns1123Label()``...) are :mod:`bosun.api.cellib`'s, given to each
expression that names them. The cost budget is :mod:`bosun.api.cellib.cost`'s: a rule whose
estimated cost (times how many values of its node an object can hold) is over upstream's
limit is refused with the CRD, and the rules of one object stop when their cost passes the
runtime budget. Left out: type-checking rules against the schema at CRD creation (a rule is
refused when it does not parse; a rule naming a field that an object lacks fails on that
object).

A rule that names ``oldSelf`` is a transition rule: checked on updates only, with the stored
value, as Kubernetes does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bosun.api import errors
from bosun.api.cellib import cost
from bosun.api.cellib.shapes import Shape
from bosun.api.crd.structural import Schema, json_type
from bosun.api.errors import FieldError


@lru_cache(maxsize=4096)
def compile_rule(rule: str) -> tuple[Any, bool]:
    """(program, whether it is a transition rule); ValueError when it does not parse.

    ``cel`` is imported here, on the first rule, not with this module: the package's
    ``__init__`` also imports its interactive shell (prompt_toolkit), which was a quarter of
    the start-up of every ``bosun`` command, though only a CRD with rules ever needs CEL."""
    import cel

    program = cel.compile(rule)
    return program, "oldSelf" in program.variables()


@lru_cache(maxsize=4096)
def library_functions(rule: str) -> dict[str, Any]:
    """The extension library functions a (compiling) rule calls: only those are registered,
    so a rule that calls none costs nothing more. Imported with the interpreter (see
    :func:`compile_rule`): the string library is ``cel``'s own ``stdlib``."""
    from bosun.api.cellib.registry import functions_for

    program, _ = compile_rule(rule)
    return functions_for(program.functions(), program.variables())


def execute(rule: str, variables: dict[str, Any]) -> Any:
    """Run a (compiling) rule on plain variables, with the library functions it calls; the
    library's exceptions pass through (KeyError for a missing field...)."""
    program, _ = compile_rule(rule)
    functions = library_functions(rule)
    return program.execute({**variables, **functions} if functions else variables)


def reason(exc: BaseException) -> str:
    """What an evaluation failure says, without the interpreter's wrapping of a library
    function's error."""
    from bosun.api.cellib.registry import error_text

    return error_text(str(exc))


def compile_error(rule: str) -> str | None:
    """Why a rule does not compile (None: it does), in Kubernetes' words
    (``compilation failed: ERROR: <input>:1:5: Syntax error: ...``)."""
    try:
        compile_rule(rule)
    except (ValueError, RuntimeError, TypeError) as exc:
        text = str(exc)
        # The library names the expression first; Kubernetes starts at the parser's report.
        prefix = f"Failed to parse expression '{rule}': "
        return f"compilation failed: {text.removeprefix(prefix)}"
    return None


class EvaluationError(Exception):
    """An expression that does not compile or fails on its input, with why."""


class Environment:
    """Variables for many expressions, converted to CEL once: converting a whole object is most
    of what one evaluation of a short expression costs, so expressions evaluated on the same
    object share it. ``lazy`` variables are read from that dict at each evaluation instead, so
    they may change between expressions (an admission policy's params and variables) without
    converting the rest again."""

    def __init__(self, fixed: dict[str, Any], lazy: dict[str, Any]) -> None:
        self.fixed = fixed
        self.lazy = lazy
        self._context: Any = None
        self._functions: dict[str, Any] = {}
        self._library: set[str] = set()  # library functions already given to the context
        self._ruled: set[str] = set()  # expressions whose library functions were given

    def add_functions(self, functions: dict[str, Any]) -> None:
        """Functions the expressions may call (registered at once if the context exists)."""
        self._functions.update(functions)
        if self._context is not None:
            for name, fn in functions.items():
                self._context.add_function(name, fn)

    def add_library(self, rule: str) -> None:
        """The extension library functions ``rule`` calls (each registered once)."""
        if rule in self._ruled:
            return
        self._ruled.add(rule)
        fresh = {k: v for k, v in library_functions(rule).items() if k not in self._library}
        if fresh:
            self._library.update(fresh)
            self.add_functions(fresh)

    @property
    def context(self) -> Any:
        """The library's Context, converted at the first evaluation (none: no cost)."""
        if self._context is None:
            import cel  # see compile_rule

            # A lazy None reads as the registered null: the resolver's None means "not mine".
            self._context = cel.Context({**self.fixed, **dict.fromkeys(self.lazy)})
            self._context.set_variable_resolver(self.lazy.get)
            for name, fn in self._functions.items():
                self._context.add_function(name, fn)
        return self._context


def evaluate(expression: str, context: dict[str, Any] | Environment) -> Any:
    """The value of ``expression`` with the variables of ``context`` (compiled once per
    expression); EvaluationError when it cannot be had."""
    why = compile_error(expression)
    if why is not None:
        raise EvaluationError(why)
    program, _ = compile_rule(expression)
    try:
        if isinstance(context, Environment):
            context.add_library(expression)
            return program.execute(context.context)
        return execute(expression, context)
    except KeyError as exc:  # a missing field: Kubernetes' wording
        raise EvaluationError(f"no such key: {exc.args[0] if exc.args else ''}") from exc
    except (RuntimeError, TypeError, ValueError, ArithmeticError) as exc:
        raise EvaluationError(reason(exc)) from exc


class Budget:
    """The runtime cost budget of one evaluation round (upstream's RuntimeCELCostBudget for
    the rules of one object), and the per-expression limit. A rule whose cost cannot pass
    what is left with the biggest values its variables could hold is not metered."""

    def __init__(self, total: int = cost.RUNTIME_BUDGET) -> None:
        self.left = total
        self.exhausted = False

    def charge(self, expression: str, *variables: dict[str, Any]) -> str | None:
        """Charge one evaluation before it runs, on ``variables`` (the first dict that has a
        name gives it); why it may not run (None: it may)."""
        if self.exhausted:
            return OUT_OF_BUDGET
        try:
            spent = _light_cost(expression)
            if spent is None:
                spent = cost.actual(expression, *variables)
        except ValueError:  # our grammar lacks something the interpreter takes: not metered
            return None
        if spent > cost.PER_CALL_LIMIT:
            return "operation cancelled: actual cost limit exceeded"
        self.left -= spent
        if self.left < 0:
            self.exhausted = True
            return OUT_OF_BUDGET
        return None


OUT_OF_BUDGET = "validation failed due to running out of cost budget, no more validation rules will be run"


@lru_cache(maxsize=4096)
def _light_cost(expression: str) -> int | None:
    """The cost of an expression whose cost cannot depend on its values' sizes, else None."""
    return None if cost.size_dependent(expression) else cost.estimate(expression, {})


def needs_metering(schema: Schema) -> bool:
    """Whether an object of ``schema`` could make its rules pass the runtime budget or one
    evaluation pass the per-call limit: not when every rule's estimate (the most it can cost
    on a value within the schema's bounds) is under the per-call limit and all of them, each
    times how many values of its node an object can hold, are within the budget. Only
    schemas that could are metered on each write."""
    total = 0
    pending: list[tuple[Schema, int]] = [(schema, 1)]
    while pending:
        node, cardinality = pending.pop()
        for item in node.get("x-kubernetes-validations") or []:
            rule = item.get("rule") if isinstance(item, dict) else None
            if not isinstance(rule, str) or compile_error(rule) is not None:
                continue
            try:
                spent = rule_cost(rule, node)
            except ValueError:
                return True  # not estimated here: metered (the run-time walk skips it too)
            if spent > cost.PER_CALL_LIMIT:
                return True
            total += spent * cardinality
        for sub in (node.get("properties") or {}).values():
            if isinstance(sub, dict):
                pending.append((sub, cardinality))
        for key in ("items", "additionalProperties"):
            sub = node.get(key)
            if isinstance(sub, dict):
                pending.append((sub, cardinality * cost.cardinality_factor(node)))
    return total > cost.RUNTIME_BUDGET


def rule_cost(rule: str, schema: Schema) -> int:
    """A rule's estimated cost on a value of ``schema`` (ValueError: it does not parse here)."""
    return cost.estimate(rule, {"self": Shape(schema), "oldSelf": Shape(schema)})


def cost_error(what: str, spent: int, limit: int) -> str:
    """Upstream's refusal of an expression too costly to accept."""
    factor = spent / limit
    if factor > 100:
        text = "more than 100x"
    elif factor < 1.5:
        text = f"{factor:f}x"
    else:
        text = f"{factor:.1f}x"
    return (f"{what} exceeds budget by factor of {text} (try simplifying the rule, or adding maxItems, "
            "maxProperties, and maxLength where arrays, maps, and strings are declared)")


class Rules:
    """The rules of an object's schema nodes, run as :func:`structural.validate` reaches each
    node, under one runtime cost budget for the whole object (as upstream). ``metered`` False:
    the schema's rules cannot together pass the budget (see :func:`needs_metering`)."""

    def __init__(self, metered: bool = True) -> None:
        self.budget = Budget()
        self.metered = metered

    def check(self, path: str, schema: Schema, value: Any, old: Any) -> list[FieldError]:
        """The rules of one schema node that need no stored value, on its value."""
        return self._check(path, schema, value, None, transitions=False)

    def check_transitions(self, path: str, schema: Schema, value: Any, old: Any) -> list[FieldError]:
        """The transition rules of one schema node (an update's, with the stored value ``old``)."""
        return self._check(path, schema, value, old, transitions=True)

    def _check(self, path: str, schema: Schema, value: Any, old: Any, *, transitions: bool) -> list[FieldError]:
        out: list[FieldError] = []
        for item in schema.get("x-kubernetes-validations") or []:
            if self.budget.exhausted:
                break  # said once, where it ran out; no more rules of the object run
            if not isinstance(item, dict) or not isinstance(item.get("rule"), str):
                continue
            rule = item["rule"]
            try:
                _, transition = compile_rule(rule)
            except (ValueError, RuntimeError, TypeError):
                continue  # refused when the CRD was written; an older CRD keeps serving
            if transition != transitions or (transition and old is None):
                continue
            context = {"self": value, "oldSelf": old} if transition else {"self": value}
            field_path = path
            if isinstance(item.get("fieldPath"), str) and item["fieldPath"]:
                field_path = path + item["fieldPath"]
            refused = self.budget.charge(rule, context) if self.metered else None
            if refused is not None:
                out.append(errors.invalid(field_path, json_type(value), refused if refused == OUT_OF_BUDGET
                                          else f"{refused} evaluating rule: {rule}"))
                if refused == OUT_OF_BUDGET:
                    break
                continue
            try:
                ok = execute(rule, context)
            except KeyError as exc:  # Kubernetes' wording: rules guard optional fields with has()
                out.append(errors.invalid(field_path, json_type(value),
                                          f"no such key: {exc.args[0] if exc.args else ''} evaluating rule: {rule}"))
                continue
            except (RuntimeError, TypeError, ValueError) as exc:
                out.append(errors.invalid(field_path, json_type(value), f"{reason(exc)} evaluating rule: {rule}"))
                continue
            if ok is True:
                continue
            message = _message(item, context) or f"failed rule: {rule}"
            why = item.get("reason")
            if why == "FieldValueForbidden":
                out.append(errors.forbidden(field_path, message))
            elif why == "FieldValueRequired":
                out.append(errors.required(field_path, message))
            else:
                out.append(errors.invalid(field_path, json_type(value), message))
        return out


def _message(item: dict[str, Any], context: dict[str, Any]) -> str:
    expr = item.get("messageExpression")
    if isinstance(expr, str) and expr:
        try:
            text = execute(expr, context)
        except (KeyError, RuntimeError, TypeError, ValueError):
            text = None
        if isinstance(text, str) and text.strip():
            return text
    msg = item.get("message")
    return msg if isinstance(msg, str) else ""
