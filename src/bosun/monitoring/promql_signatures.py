"""PromQL's value types and the functions' signatures (Prometheus' ``parser/functions.go``), so
the parser refuses ``abs(x[5m])`` or ``rate(x)`` when a rule is written, naming the position."""

from __future__ import annotations

from dataclasses import dataclass

SCALAR, VECTOR, MATRIX, STRING = "scalar", "instant vector", "range vector", "string"


@dataclass(frozen=True, slots=True)
class Signature:
    args: tuple[str, ...]
    returns: str = VECTOR
    optional: int = 0  # how many of the last args may be left out
    variadic: bool = False  # the last arg's type repeats (label_join's source labels)


_MATH = ("abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "acos", "acosh", "asin", "asinh",
         "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "sort", "sort_desc")
_OVER_TIME = ("avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
              "last_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time", "absent_over_time",
              "rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets")
DATE_FUNCTIONS = ("day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year")

FUNCTIONS: dict[str, Signature] = {
    **{f: Signature((VECTOR,)) for f in _MATH},
    **{f: Signature((MATRIX,)) for f in _OVER_TIME},
    **{f: Signature((VECTOR,), optional=1) for f in DATE_FUNCTIONS},
    "round": Signature((VECTOR, SCALAR), optional=1),
    "clamp": Signature((VECTOR, SCALAR, SCALAR)),
    "clamp_min": Signature((VECTOR, SCALAR)),
    "clamp_max": Signature((VECTOR, SCALAR)),
    "quantile_over_time": Signature((SCALAR, MATRIX)),
    "predict_linear": Signature((MATRIX, SCALAR)),
    "histogram_quantile": Signature((SCALAR, VECTOR)),
    "label_replace": Signature((VECTOR, STRING, STRING, STRING, STRING)),
    "label_join": Signature((VECTOR, STRING, STRING, STRING), optional=1, variadic=True),
    "absent": Signature((VECTOR,)),
    "timestamp": Signature((VECTOR,)),
    "vector": Signature((SCALAR,)),
    "scalar": Signature((VECTOR,), SCALAR),
    "time": Signature((), SCALAR),
    "pi": Signature((), SCALAR),
}

# Functions whose answer keeps the series' metric name (their value is the series' own).
KEEP_NAME = frozenset({"last_over_time", "label_replace", "label_join", "sort", "sort_desc"})
