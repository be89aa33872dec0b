"""cel-go's string extensions (and its sets), which Kubernetes enables and the Rust
interpreter lacks: the implementations of ``cel.stdlib`` (shipped with the
``common-expression-language`` package), guarded so that a name shared with the list library
(``indexOf``, ``lastIndexOf``) falls through to it for a list; plus ``format``, which
``cel.stdlib`` does not have."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cel import stdlib

from bosun.api.cellib.typed import NoOverload, string


def _on_strings(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(receiver: Any, *args: Any) -> Any:
        return fn(string(receiver), *args)
    return call


def join(items: Any, sep: Any = "") -> str:
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise NoOverload("no such overload: join expects a list of strings")
    return string(sep).join(items)


def _verb(verb: str, precision: int | None, arg: Any) -> str:
    if verb == "s":
        if isinstance(arg, bool):
            return "true" if arg else "false"
        if arg is None:
            return "null"
        return str(arg)
    if verb == "d":
        if not isinstance(arg, int) or isinstance(arg, bool):
            raise TypeError(f"error during formatting: decimal clause can only be used on integers, was given {arg!r}")
        return str(arg)
    if verb in "fe":
        if not isinstance(arg, int | float) or isinstance(arg, bool):
            raise TypeError("error during formatting: fixed-point clause can only be used on doubles, "
                            f"was given {arg!r}")
        return f"{float(arg):.{6 if precision is None else precision}{verb}}"
    if verb in "xXob":
        if isinstance(arg, str):
            text = arg.encode().hex()
            return text.upper() if verb == "X" else text
        if not isinstance(arg, int) or isinstance(arg, bool):
            raise TypeError("error during formatting: only integers, byte buffers, and strings can be "
                            f"formatted as {verb}")
        return format(arg, verb)
    raise ValueError(f"could not parse formatting clause: unrecognized formatting clause \"{verb}\"")


def format_(template: Any, args: Any) -> str:
    """cel-go's ``"%s is %d".format([a, b])``: verbs s, d, f, e, x, X, o, b and ``%%``; a
    precision (``%.2f``) for f and e."""
    text, values = string(template), args
    if not isinstance(values, list):
        raise NoOverload("no such overload: format expects a list of arguments")
    out: list[str] = []
    i = used = 0
    while i < len(text):
        ch = text[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i < len(text) and text[i] == "%":
            out.append("%")
            i += 1
            continue
        precision = None
        if i < len(text) and text[i] == ".":
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            precision, i = int(text[i + 1:j] or 0), j
        if i >= len(text):
            raise ValueError("could not parse formatting clause: unexpected end of string")
        if used >= len(values):
            raise ValueError(f"index {used} out of range")
        out.append(_verb(text[i], precision, values[used]))
        used += 1
        i += 1
    return "".join(out)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    **{name: _on_strings(fn) for name, fn in stdlib.EXTENSIONS["strings"].items()
       if name not in ("join", "reverse", "strings.quote")},
    "join": join, "format": format_, "strings.quote": _on_strings(stdlib.quote),
    **stdlib.EXTENSIONS["sets"],
}
