"""Kubernetes resource quantities (``500m``, ``1.5Gi``, ``1e3``).

The scheduler, the agent and validation all compare requests and limits, so they must agree
with Kubernetes on what a quantity string means down to the last byte and millicore; this
module is that single agreement. Values are exact ``Decimal``s, never floats.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

# Kubernetes' own regular expression, quoted in its error messages.
QUANTITY_REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
QUANTITY_ERROR = f"quantities must match the regular expression '{QUANTITY_REGEX}'"

_NUMBER = re.compile(r"^([+-]?)([0-9]+\.?[0-9]*|\.[0-9]+)(.*)$")
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")

_DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}
_BINARY_SUFFIXES: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_ORDER = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL_ORDER = ((-9, "n"), (-6, "u"), (-3, "m"), (0, ""), (3, "k"), (6, "M"), (9, "G"),
                  (12, "T"), (15, "P"), (18, "E"))


def parse_quantity(s: str | int | float | Decimal) -> Decimal:
    """Exact value of a quantity; ``ValueError`` (with Kubernetes' wording) when it is not one."""
    if isinstance(s, bool):
        raise ValueError(QUANTITY_ERROR)
    if isinstance(s, int | Decimal):
        return Decimal(s)
    if isinstance(s, float):
        if not math.isfinite(s):
            raise ValueError(QUANTITY_ERROR)
        return Decimal(repr(s))
    if not isinstance(s, str):
        raise ValueError(QUANTITY_ERROR)
    return _parse_short(s) if len(s) <= _SHORT else _parse_text(s)


def _parse_text(s: str) -> Decimal:
    text = s.strip()
    if not text or text != s:
        raise ValueError(QUANTITY_ERROR)
    m = _NUMBER.match(text)
    if m is None:
        raise ValueError(QUANTITY_ERROR)
    sign, digits, suffix = m.groups()
    try:
        number = Decimal(digits)
    except InvalidOperation as exc:  # pragma: no cover - regex already guarantees digits
        raise ValueError(QUANTITY_ERROR) from exc
    if sign == "-":
        number = -number
    if suffix in _DECIMAL_SUFFIXES:
        return number.scaleb(_DECIMAL_SUFFIXES[suffix])
    if suffix in _BINARY_SUFFIXES:
        return number * (Decimal(2) ** _BINARY_SUFFIXES[suffix])
    e = _EXPONENT.match(suffix)
    if e is not None:
        exp = int(e.group(1))
        if abs(exp) > 1000:
            raise ValueError("quantity exponent is too large")
        return number.scaleb(exp)
    raise ValueError(QUANTITY_ERROR)


# The few texts a cluster uses (``100m``, ``128Mi``) repeat in every pod's validation,
# warnings and canonical form: their (immutable) values are remembered, if short.
_SHORT = 40
_parse_short = lru_cache(maxsize=4096)(_parse_text)


def is_quantity(s: object) -> bool:
    """Whether ``s`` is a quantity as JSON carries it (a string or a number)."""
    if not isinstance(s, str | int | float) or isinstance(s, bool):
        return False
    try:
        parse_quantity(s)
    except ValueError:
        return False
    return True


def _ceil(d: Decimal) -> int:
    return int(d.to_integral_value(rounding="ROUND_CEILING"))


def cpu_millis(q: str | int | float | Decimal) -> int:
    """Millicores, rounded up as Kubernetes' ``MilliValue`` does (``0.0001`` -> 1)."""
    return _ceil(parse_quantity(q) * 1000)


def to_bytes(q: str | int | float | Decimal) -> int:
    """Whole units (bytes for memory and storage), rounded up as Kubernetes' ``Value`` does."""
    return _ceil(parse_quantity(q))


def format_quantity(value: Decimal | int, binary: bool = False) -> str:
    """Canonical text, as Kubernetes prints a quantity back (``0.5`` -> ``500m``, ``2**30`` -> ``1Gi``).

    ``binary`` asks for the Ki/Mi/Gi family (memory); like Kubernetes it falls back to decimal
    suffixes for values under 1024 or with a fractional part. Precision below nano units is
    rounded up, as Kubernetes does.
    """
    d = Decimal(value)
    if d == 0:
        return "0"
    if binary and abs(d) >= 1024 and d == d.to_integral_value():
        n = int(d)
        idx = 0
        while idx < len(_BINARY_ORDER) - 1 and n % 1024 == 0:
            n //= 1024
            idx += 1
        return f"{n}{_BINARY_ORDER[idx]}"
    sign = "-" if d < 0 else ""
    nanos = _ceil(abs(d).scaleb(9))
    exp = -9
    while exp < 18 and nanos % 1000 == 0:
        nanos //= 1000
        exp += 3
    suffix = dict(_DECIMAL_ORDER)[exp]
    return f"{sign}{nanos}{suffix}"


def canonical_quantity(q: str | int | float) -> str:
    """See :func:`_canonical`; the few texts a cluster uses (``100m``, ``128Mi``) repeat on
    every write, so their answers are remembered."""
    if isinstance(q, str):
        return _canonical_text(q)
    return _canonical(q)


@lru_cache(maxsize=4096)
def _canonical_text(q: str) -> str:
    return _canonical(q)


def _canonical(q: str | int | float) -> str:
    """The text Kubernetes stores and returns for a quantity written as ``q``.

    Kubernetes decodes a quantity and encodes it back in canonical form, keeping the family
    of its suffix: ``".5"`` -> ``"500m"``, ``"1.5Gi"`` -> ``"1536Mi"``, ``"1000"`` ->
    ``"1k"``, ``"1e6"`` -> ``"1e6"``, the JSON number ``1`` -> ``"1"``. Clients compare
    what they wrote with what they read back (``kubectl diff``, controllers' equality
    checks), so the server must give the same text upstream does.
    """
    value = parse_quantity(q)
    if not isinstance(q, str):
        return format_quantity(value)
    m = _NUMBER.match(q)
    suffix = m.group(3) if m else ""
    if suffix in _BINARY_SUFFIXES:
        return format_quantity(value, binary=True)
    if _EXPONENT.match(suffix):
        return _format_exponent(value)
    return format_quantity(value)


def _format_exponent(value: Decimal) -> str:
    """Decimal-exponent form (``1e3``, ``15e2`` is written ``1500``): the exponent a
    multiple of three, as Kubernetes writes it, or none."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    nanos = _ceil(abs(value).scaleb(9))
    exp = -9
    while nanos % 1000 == 0:
        nanos //= 1000
        exp += 3
    if exp < 0:  # fractions use the SI suffixes, as upstream does
        return format_quantity(value)
    return f"{sign}{nanos}" + (f"e{exp}" if exp else "")
