"""The history over HTTP, authenticated and authorized like every other path of the API server.

``GET /metrics/history?metric=NAME&match=k=v,k2=v2&start=T&end=T`` answers JSON::

    {"metric": NAME, "resolution": 10, "series": [{"labels": {...}, "points": [[t, v], ...]}]}

``start``/``end`` are Unix seconds, RFC 3339 times, or ``-5m``/``-1h`` (relative to now); the
default is the whole retention. Without ``metric``, the answer lists the metric names.

``GET /federate`` is Prometheus' federation endpoint: the newest value of every series (or
of those ``match[]`` names, ``match[]=NAME`` or ``match[]={__name__="NAME",k="v"}``) as
Prometheus text with timestamps, so a real Prometheus can scrape the whole cluster here.
``GET /metrics/query?query=EXPR`` evaluates a PromQL expression (subqueries and ``@`` included, see
:mod:`bosun.monitoring.promql`) now and answers as Prometheus' ``/api/v1/query`` does
(``{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {...},
"value": [t, "v"]}]}}``): the alert rules' evaluator and any dashboard ask it the same way.
``GET /metrics/query_range?query=EXPR&start=T&end=T&step=S`` evaluates it at every step from
start to end as Prometheus' ``/api/v1/query_range`` does (``resultType`` ``matrix``, each
series with ``"values": [[t, "v"], ...]``); ``step`` is seconds or a duration (``15s``), at
most 11,000 steps (Prometheus' limit). A syntax error is a 400 naming its line and column (as
Prometheus' ``bad_data``); an expression that cannot be evaluated on the data (a vector match
that is not unique) is a 422, as Prometheus' ``execution`` errors.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from aiohttp import web

from bosun.api import errors
from bosun.api.errors import APIError
from bosun.api.httputil import json_response
from bosun.monitoring.history import MetricsHistory
from bosun.monitoring.promql import Expr, PromQLError, parse, parse_duration
from bosun.monitoring.promql_eval import EvalError, Evaluator, HistorySource

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*')
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
MAX_STEPS = 11_000  # Prometheus' limit of points per series in a range query


def parse_time(raw: str, param: str, now: float) -> float:
    m = _RELATIVE.match(raw)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise errors.bad_request(f"{param}: invalid time {raw!r}: use Unix seconds, RFC 3339 or -5m") from exc


def parse_match(raw: str) -> dict[str, str]:
    """``k=v,k2=v2`` into equality matchers."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise errors.bad_request(f"match: invalid matcher {part!r}: want name=value")
        out[key.strip()] = value.strip()
    return out


def parse_selector(raw: str) -> tuple[str, dict[str, str]]:
    """``NAME``, ``NAME{k="v"}`` or ``{__name__="NAME",k="v"}`` (equality matchers only)."""
    raw = raw.strip()
    name, brace, rest = raw.partition("{")
    name = name.strip()
    matchers: dict[str, str] = {}
    if brace:
        if not rest.endswith("}"):
            raise errors.bad_request(f"match[]: unclosed selector {raw!r}")
        body = rest[:-1]
        pos = 0
        while pos < len(body):
            m = _MATCHER.match(body, pos)
            if m is None:
                raise errors.bad_request(f"match[]: cannot parse {raw!r} at position {pos + len(name) + 1}: "
                                         'only name="value" matchers are supported')
            matchers[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\\\", "\\")
            pos = m.end()
            if pos < len(body):
                if body[pos] != ",":
                    raise errors.bad_request(f"match[]: expected ',' in {raw!r} at position {pos + len(name) + 1}")
                pos += 1
    name = matchers.pop("__name__", name)
    if not _NAME.match(name):
        raise errors.bad_request(f"match[]: a metric name is required in {raw!r}")
    return name, matchers


def _number(v: float) -> str:
    """A value as Prometheus' JSON writes it (a string: NaN and infinities have no JSON number)."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v) if v != int(v) else str(int(v))


def parse_step(raw: str) -> float:
    """``step``: seconds (``15``, ``0.5``) or a duration (``15s``, ``1m``), more than zero."""
    if not raw:
        raise errors.bad_request("step: required (seconds or a duration such as 15s)")
    if _DURATION.match(raw):
        step = parse_duration(raw)
    else:
        try:
            step = float(raw)
        except ValueError:
            raise errors.bad_request(f"step: invalid {raw!r}: use seconds or a duration such as 15s") from None
    if not step > 0 or step == float("inf"):
        raise errors.bad_request(f"step: must be more than zero, not {raw!r}")
    return step


def _parse_query(text: str) -> Expr:
    try:
        return parse(text)
    except PromQLError as e:
        raise errors.bad_request(f"query: {e}") from None


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def federate_text(history: MetricsHistory, selectors: list[tuple[str, dict[str, str]]]) -> str:
    lines: list[str] = []
    wanted = selectors or [(n, {}) for n in history.names()]
    for name, matchers in wanted:
        found = history.latest(name, matchers)
        if not found:
            continue
        lines.append(f"# TYPE {name} untyped")
        for labels, p in sorted(found, key=lambda x: sorted(x[0].items())):
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{inner}}} {p.value!r} {int(p.time * 1000)}")
    return "\n".join(lines) + ("\n" if lines else "")


class QueryAPI:
    def __init__(self, history: MetricsHistory) -> None:
        self.history = history
        self.evaluator = Evaluator(HistorySource(history))

    async def query_handler(self, request: web.Request) -> web.Response:
        expr = _parse_query(request.query.get("query", ""))
        now = time.time()
        try:
            out = self.evaluator.evaluate(expr, now)
        except EvalError as e:
            raise APIError(422, "Invalid", f"query: {e}") from None
        if isinstance(out, float):
            data: dict[str, object] = {"resultType": "scalar", "result": [now, _number(out)]}
        else:
            data = {"resultType": "vector",
                    "result": [{"metric": s.labels, "value": [now, _number(s.value)]} for s in out]}
        return json_response({"status": "success", "data": data})

    async def query_range_handler(self, request: web.Request) -> web.Response:
        q = request.query
        expr = _parse_query(q.get("query", ""))
        now = time.time()
        for param in ("start", "end"):
            if not q.get(param):
                raise errors.bad_request(f"{param}: required (Unix seconds, RFC 3339 or -5m)")
        start, end = parse_time(q["start"], "start", now), parse_time(q["end"], "end", now)
        step = parse_step(q.get("step", ""))
        if end < start:
            raise errors.bad_request("end: must not be before start")
        if (end - start) / step + 1 > MAX_STEPS:
            raise errors.bad_request(f"step: exceeded the maximum of {MAX_STEPS} points per series; "
                                     "use a larger step")
        try:
            matrix = self.evaluator.evaluate_range(expr, start, end, step)
        except EvalError as e:
            raise APIError(422, "Invalid", f"query: {e}") from None
        result = [{"metric": labels, "values": [[t, _number(v)] for t, v in points]} for labels, points in matrix]
        return json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})

    async def history_handler(self, request: web.Request) -> web.Response:
        q = request.query
        metric = q.get("metric", "")
        if not metric:
            return json_response({"metrics": self.history.names(), "resolution": self.history.config.resolution,
                                  "retentionSeconds": self.history.config.retention, "series": len(self.history)})
        now = time.time()
        start = parse_time(q["start"], "start", now) if q.get("start") else None
        end = parse_time(q["end"], "end", now) if q.get("end") else None
        if start is not None and end is not None and end < start:
            raise errors.bad_request("end: must not be before start")
        results = self.history.query(metric, parse_match(q.get("match", "")), start, end)
        return json_response({
            "metric": metric, "resolution": self.history.config.resolution,
            "series": [{"labels": r.labels, "points": r.points} for r in results],
        })

    async def federate_handler(self, request: web.Request) -> web.Response:
        selectors = [parse_selector(s) for s in request.query.getall("match[]", [])]
        return web.Response(text=federate_text(self.history, selectors),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})
