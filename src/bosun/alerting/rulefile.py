"""User alert rules: Prometheus' rule-file format, in ConfigMaps labelled ``bosun.io/alert-rules``.

Why a ConfigMap and not a new kind: the format is the one every Prometheus user already
writes (and kube-prometheus ships), so a file works unchanged as a ConfigMap's value, and
``kubectl`` creates one without a schema or a CRD. The label makes the API server's
admission step (:mod:`bosun.api.admission.alertrules`) parse every value on each write, so
a rule with a syntax error is refused with a 422 naming the key, the rule and the line and
column in the expression, just as a kind's validation would refuse it::

    apiVersion: v1
    kind: ConfigMap
    metadata: {name: web-rules, namespace: shop, labels: {bosun.io/alert-rules: "true"}}
    data:
      rules.yaml: |
        groups:
        - name: web
          rules:
          - alert: WebTooManyRestarts
            expr: sum by (pod) (increase(pod_container_restarts_total{namespace="shop"}[15m])) > 3
            for: 1m
            labels: {severity: warning}
            annotations: {summary: "{{ $labels.pod }} restarts often ({{ $value }})"}

Every value of such a ConfigMap is one rule file. Recording rules (``record:``) are refused:
the history stores what the cluster reports, not derived series. ``keep_firing_for`` is read
as Prometheus reads it. A ConfigMap that escaped admission (written before the label was
known to the server) is still parsed by the alerting controller, which skips a bad file with
an Event and shows the error in ``bosun alerts rules``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bosun.alerting.config import ConfigError, parse_duration
from bosun.alerting.yamltext import load_yaml
from bosun.monitoring.promql import Expr, PromQLError, is_scalar, parse

RULES_LABEL = "bosun.io/alert-rules"
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class RuleFileError(ValueError):
    """One line naming the rule and the position in its file or expression."""


@dataclass(frozen=True, slots=True)
class ExprRule:
    """One ``alert:`` rule of a rule file."""

    name: str
    expr_text: str
    expr: Expr
    for_: float = 0.0
    keep_firing_for: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    group: str = ""
    source: str = ""  # namespace/configmap[key]


def is_rule_configmap(cm: dict[str, Any]) -> bool:
    labels = (cm.get("metadata") or {}).get("labels") or {}
    return str(labels.get(RULES_LABEL, "")).lower() not in ("", "false")


def _strings(data: Any, where: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RuleFileError(f"{where}: must be a mapping of strings")
    for k in data:
        if not _NAME.match(str(k)):
            raise RuleFileError(f"{where}: {k!r} is not a label name")
    return {str(k): str(v) for k, v in data.items()}


def _duration(data: dict[str, Any], key: str, where: str) -> float:
    if key not in data:
        return 0.0
    try:
        return parse_duration(data[key], f"{where}.{key}")
    except ConfigError as e:
        raise RuleFileError(str(e)) from None


def _rule(data: Any, where: str, group: str, source: str) -> ExprRule:
    if not isinstance(data, dict):
        raise RuleFileError(f"{where}: must be a mapping")
    if "record" in data:
        raise RuleFileError(f"{where}.record: recording rules are not supported; write an alert: rule")
    for k in data:
        if k not in ("alert", "expr", "for", "keep_firing_for", "labels", "annotations"):
            raise RuleFileError(f"{where}.{k}: unknown field (expected alert, expr, for, keep_firing_for, "
                                "labels, annotations)")
    name = data.get("alert")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleFileError(f"{where}.alert: required, a name such as HighErrorRate")
    text = data.get("expr")
    if not isinstance(text, str | int | float) or isinstance(text, bool) or not str(text).strip():
        raise RuleFileError(f"{where}.expr: required")
    try:
        expr = parse(str(text))
    except PromQLError as e:
        raise RuleFileError(f"{where}.expr: {e.line}:{e.column}: {e.reason}") from None
    if is_scalar(expr):
        raise RuleFileError(f"{where}.expr: 1:1: an alert's expression must select series, not only numbers")
    return ExprRule(name, str(text), expr, _duration(data, "for", where), _duration(data, "keep_firing_for", where),
                    _strings(data.get("labels"), f"{where}.labels"),
                    _strings(data.get("annotations"), f"{where}.annotations"), group, source)


def parse_rule_file(text: str, source: str = "") -> list[ExprRule]:
    """A rule file's alert rules, or :class:`RuleFileError`."""
    data = load_yaml(text, RuleFileError)
    if not isinstance(data, dict) or set(data) - {"groups"}:
        raise RuleFileError("a rule file is a mapping with one field, groups")
    groups = data.get("groups") or []
    if not isinstance(groups, list):
        raise RuleFileError("groups: must be a list")
    out: list[ExprRule] = []
    names: set[str] = set()
    for i, g in enumerate(groups):
        where = f"groups[{i}]"
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not g["name"]:
            raise RuleFileError(f"{where}.name: required")
        for k in g:
            if k not in ("name", "interval", "rules", "labels"):
                raise RuleFileError(f"{where}.{k}: unknown field (expected name, interval, rules, labels)")
        if g["name"] in names:
            raise RuleFileError(f"{where}.name: {g['name']!r} given twice")
        names.add(g["name"])
        _duration(g, "interval", where)
        extra = _strings(g.get("labels"), f"{where}.labels")
        rules = g.get("rules") or []
        if not isinstance(rules, list):
            raise RuleFileError(f"{where}.rules: must be a list")
        for j, r in enumerate(rules):
            rule = _rule(r, f"{where}.rules[{j}]", g["name"], source)
            if extra:
                rule = ExprRule(rule.name, rule.expr_text, rule.expr, rule.for_, rule.keep_firing_for,
                                {**extra, **rule.labels}, rule.annotations, rule.group, source)
            out.append(rule)
    return out
