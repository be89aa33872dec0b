"""CEL validation rules (``x-kubernetes-validations``) of custom resource schemas, and the
compile and evaluate helpers every CEL user of the server shares (the admission policies of
:mod:`bosun.api.admission.policy` too).

Evaluated with ``common-expression-language`` (PyPI; bindings of the Rust ``cel``
interpreter): it is maintained, compiles an expression once into a reusable program, and has
CEL's standard macros and functions (``has``, ``all``, ``exists``, ``size``, ``matches``,
``startsWith``...). What Kubernetes adds on top is left out: its extension libraries
(``quantity()``, ``url()``, ``ip()``, ``isSorted()``, the ``optional`` types), the cost
budget, and type-checking rules against the schema at CRD creation (a rule is refused when
it does not parse; a rule naming a field that an object lacks fails on that object).

A rule that names ``oldSelf`` is a transition rule: checked on updates only, with the stored
value, as Kubernetes does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bosun.api import errors
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

    def add_functions(self, functions: dict[str, Any]) -> None:
        """Functions the expressions may call (registered at once if the context exists)."""
        self._functions.update(functions)
        if self._context is not None:
            for name, fn in functions.items():
                self._context.add_function(name, fn)

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
        return program.execute(context.context if isinstance(context, Environment) else context)
    except KeyError as exc:  # a missing field: Kubernetes' wording
        raise EvaluationError(f"no such key: {exc.args[0] if exc.args else ''}") from exc
    except (RuntimeError, TypeError, ValueError, ArithmeticError) as exc:
        raise EvaluationError(str(exc)) from exc


def check(path: str, schema: Schema, value: Any, old: Any) -> list[FieldError]:
    """The rules of one schema node that need no stored value, on its value."""
    return _check(path, schema, value, None, transitions=False)


def check_transitions(path: str, schema: Schema, value: Any, old: Any) -> list[FieldError]:
    """The transition rules of one schema node (an update's, with the stored value ``old``)."""
    return _check(path, schema, value, old, transitions=True)


def _check(path: str, schema: Schema, value: Any, old: Any, *, transitions: bool) -> list[FieldError]:
    out: list[FieldError] = []
    for item in schema.get("x-kubernetes-validations") or []:
        if not isinstance(item, dict) or not isinstance(item.get("rule"), str):
            continue
        rule = item["rule"]
        try:
            program, transition = compile_rule(rule)
        except (ValueError, RuntimeError, TypeError):
            continue  # refused when the CRD was written; an older CRD keeps serving
        if transition != transitions or (transition and old is None):
            continue
        context = {"self": value, "oldSelf": old} if transition else {"self": value}
        field_path = path
        if isinstance(item.get("fieldPath"), str) and item["fieldPath"]:
            field_path = path + item["fieldPath"]
        try:
            ok = program.execute(context)
        except KeyError as exc:  # Kubernetes' wording: rules guard optional fields with has()
            out.append(errors.invalid(field_path, json_type(value),
                                      f"no such key: {exc.args[0] if exc.args else ''} evaluating rule: {rule}"))
            continue
        except (RuntimeError, TypeError, ValueError) as exc:
            out.append(errors.invalid(field_path, json_type(value), f"{exc} evaluating rule: {rule}"))
            continue
        if ok is True:
            continue
        message = _message(item, context) or f"failed rule: {rule}"
        reason = item.get("reason")
        if reason == "FieldValueForbidden":
            out.append(errors.forbidden(field_path, message))
        elif reason == "FieldValueRequired":
            out.append(errors.required(field_path, message))
        else:
            out.append(errors.invalid(field_path, json_type(value), message))
    return out


def _message(item: dict[str, Any], context: dict[str, Any]) -> str:
    expr = item.get("messageExpression")
    if isinstance(expr, str) and expr:
        try:
            program, _ = compile_rule(expr)
            text = program.execute(context)
        except (KeyError, RuntimeError, TypeError, ValueError):
            text = None
        if isinstance(text, str) and text.strip():
            return text
    msg = item.get("message")
    return msg if isinstance(msg, str) else ""
