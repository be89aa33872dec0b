"""Kubernetes' CEL quantity library: ``quantity()``, ``isQuantity()`` and the arithmetic and
comparisons of quantities, exact (Decimal) as Kubernetes' own. A quantity travels as its exact
value in plain decimal (see :mod:`.typed`), so ``==`` compares values."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bosun.api.cellib.typed import string, unwrap, wrap
from bosun.api.quantity import parse_quantity

_INT64 = 2 ** 63


def _make(value: Decimal) -> dict[str, str]:
    text = format(value.normalize(), "f") if value else "0"
    return wrap("quantity", text)


def _value(q: Any) -> Decimal:
    return Decimal(unwrap("quantity", q))


def quantity(value: Any) -> dict[str, str]:
    return _make(parse_quantity(string(value)))


def is_quantity(value: Any) -> bool:
    try:
        parse_quantity(string(value))
    except ValueError:
        return False
    return True


def _operand(other: Any) -> Decimal:
    if isinstance(other, int) and not isinstance(other, bool):
        return Decimal(other)
    return _value(other)


def sign(q: Any) -> int:
    v = _value(q)
    return (v > 0) - (v < 0)


def compare_to(q: Any, other: Any) -> int:
    a, b = _value(q), _value(other)
    return (a > b) - (a < b)


def is_greater_than(q: Any, other: Any) -> bool:
    return _value(q) > _value(other)


def is_less_than(q: Any, other: Any) -> bool:
    return _value(q) < _value(other)


def add(q: Any, other: Any) -> dict[str, str]:
    return _make(_value(q) + _operand(other))


def sub(q: Any, other: Any) -> dict[str, str]:
    return _make(_value(q) - _operand(other))


def is_integer(q: Any) -> bool:
    v = _value(q)
    return v == v.to_integral_value() and -_INT64 <= v < _INT64


def as_integer(q: Any) -> int:
    if not is_integer(q):
        raise ValueError("cannot convert value to integer")
    return int(_value(q))


def as_approximate_float(q: Any) -> float:
    return float(_value(q))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "quantity": quantity, "isQuantity": is_quantity, "sign": sign, "compareTo": compare_to,
    "isGreaterThan": is_greater_than, "isLessThan": is_less_than, "add": add, "sub": sub,
    "isInteger": is_integer, "asInteger": as_integer, "asApproximateFloat": as_approximate_float,
}
