"""Kubernetes' CEL extension libraries, in one registry shared by every CEL user of the server
(CRD validation rules, ValidatingAdmissionPolicies, webhook match conditions).

Each library is a module with a ``FUNCTIONS`` table, registered as Python functions of the
``common-expression-language`` interpreter (``x.f(a)`` calls ``f(x, a)``, ``ns.f()`` the
function named ``ns.f``). Where two libraries share a name (``indexOf`` of strings and of
lists), the registry tries each in turn: an implementation raises :class:`.NoOverload` for
arguments that are not its types. An expression gets only the functions it names
(:func:`functions_for`), so one that uses none pays nothing.

Not done: the ``optional`` helpers beyond the interpreter's own, and CEL-level types
of the new values (see :mod:`.typed`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from bosun.api.cellib import NAMESPACES, formats, ips, lists, quantities, regex, semver, strings, urls
from bosun.api.cellib.typed import NoOverload

Function = Callable[..., Any]
LIBRARIES: tuple[dict[str, Function], ...] = (strings.FUNCTIONS, lists.FUNCTIONS, regex.FUNCTIONS, urls.FUNCTIONS,
                                             quantities.FUNCTIONS, ips.FUNCTIONS, formats.FUNCTIONS,
                                             semver.FUNCTIONS)


def _overloaded(name: str, impls: list[Function]) -> Function:
    def call(*args: Any) -> Any:
        for impl in impls:
            try:
                return impl(*args)
            except NoOverload:
                continue
        raise TypeError(f"found no matching overload for '{name}' applied to {_types(args)}")
    return call


def _types(args: Iterable[Any]) -> str:
    names = {bool: "bool", int: "int", float: "double", str: "string", list: "list", dict: "map", bytes: "bytes"}
    return "(" + ", ".join(names.get(type(a), type(a).__name__) for a in args) + ")"


def _one(name: str, impl: Function) -> Function:
    def call(*args: Any) -> Any:
        try:
            return impl(*args)
        except NoOverload:
            raise TypeError(f"found no matching overload for '{name}' applied to {_types(args)}") from None
    return call


def _registry() -> dict[str, Function]:
    impls: dict[str, list[Function]] = {}
    for library in LIBRARIES:
        for name, fn in library.items():
            impls.setdefault(name, []).append(fn)
    return {name: _one(name, fns[0]) if len(fns) == 1 else _overloaded(name, fns) for name, fns in impls.items()}


FUNCTIONS: dict[str, Function] = _registry()
# ``format.dns1123Label()`` names the function ``dns1123Label`` on the variable ``format``.
_QUALIFIED: dict[str, list[str]] = {}
for _full in FUNCTIONS:
    if "." in _full:
        _QUALIFIED.setdefault(_full.rpartition(".")[2], []).append(_full)
assert {name.partition(".")[0] for name in FUNCTIONS if "." in name} <= NAMESPACES


def functions_for(functions: Iterable[str], variables: Iterable[str]) -> dict[str, Function]:
    """The library functions an expression that names ``functions`` and ``variables`` calls."""
    names = set(variables)
    out: dict[str, Function] = {}
    for fn in functions:
        if fn in FUNCTIONS:
            out[fn] = FUNCTIONS[fn]
        for full in _QUALIFIED.get(fn, ()):
            if full.partition(".")[0] in names:
                out[full] = FUNCTIONS[full]
    return out


_PY_ERROR = re.compile(r"Python function call failed: \w+: (.*?)\. Check function arguments and their types\.", re.S)


def error_text(text: str) -> str:
    """What a library function's failure says, without the interpreter's wrapping."""
    m = _PY_ERROR.search(text)
    return m.group(1) if m else text
