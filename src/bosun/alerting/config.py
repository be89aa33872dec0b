"""The ``bosun-alerting`` ConfigMap (kube-system), key ``config.yaml``: receivers, the route
tree, rule overrides and timings, parsed into frozen values, or a one-line :class:`ConfigError`
naming the field.

Why a ConfigMap: ``kubectl`` can write it today (``kubectl create configmap bosun-alerting
--from-file=config.yaml``) without a custom kind, and the secrets it names (an SMTP password,
a webhook URL) stay in Secrets of the same namespace, read when a message is sent::

    receivers:
    - name: ops
      webhooks:
      - urlSecret: {name: alert-webhook, key: url}    # or url: https://...
      emails:
      - to: [ops@example.com]
        from: bosun@example.com
        smarthost: smtp.example.com:587
        tls: starttls                                 # starttls (default) | tls | none
        username: bosun
        passwordSecret: {name: smtp, key: password}
    route:                                            # optional: the first receiver, by alertname+namespace
      receiver: ops
      groupBy: [alertname, namespace]
      groupWait: 5s
      groupInterval: 1m
      repeatInterval: 4h
      routes:
      - match: {severity: critical}
        receiver: ops
    rules:                                            # optional overrides of the built-in rules
      KubePodCrashLooping: {for: 0s, keepFiringFor: 5m, labels: {severity: critical}}
      KubeHpaMaxedOut: {enabled: false}
    evaluationInterval: 10s
    delivery: {retryInitial: 1s, retryMax: 1m}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bosun.alerting.yamltext import load_yaml

CONFIG_NAMESPACE = "kube-system"
CONFIG_NAME = "bosun-alerting"
CONFIG_KEY = "config.yaml"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DEFAULT_GROUP_BY = ("alertname", "namespace")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A configuration that cannot be used; its message is one line naming the field."""


def parse_duration(text: Any, where: str) -> float:
    """Prometheus' durations ("30s", "1h30m", "500ms") -> seconds."""
    s = str(text).strip()
    if not s or _DURATION.sub("", s):
        raise ConfigError(f"{where}: {text!r} is not a duration (use e.g. 30s, 5m, 1h30m, 500ms)")
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(s))


@dataclass(frozen=True, slots=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str = ""
    url_secret: SecretRef | None = None


@dataclass(frozen=True, slots=True)
class EmailSpec:
    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    tls: str = "starttls"
    username: str = ""
    password_secret: SecretRef | None = None
    insecure_skip_verify: bool = False
    ca_secret: SecretRef | None = None


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    name: str
    webhooks: tuple[WebhookSpec, ...] = ()
    emails: tuple[EmailSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """A node of the route tree. ``group_wait`` defaults to 5 s, not Alertmanager's 30 s: there
    it covers Prometheus servers that each evaluate their rules on their own minute and send
    independently; here one evaluator runs every rule right after each history round and on
    object changes (at most every 2 s), so what one fault raises in a round arrives at once, and
    5 s gathers what it raises over the next object changes (a Deployment's replicas crashing
    seconds apart) while keeping a threshold-to-message path under 15 s (bench/metrics.py)."""

    receiver: str
    match: tuple[tuple[str, str], ...] = ()
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    group_wait: float = 5.0
    group_interval: float = 60.0
    repeat_interval: float = 4 * 3600.0
    routes: tuple[Route, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match)

    def find(self, labels: dict[str, str]) -> Route:
        """The deepest route whose match holds (first child wins, as Alertmanager without continue)."""
        for child in self.routes:
            if child.matches(labels):
                return child.find(labels)
        return self


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    receivers: dict[str, ReceiverSpec] = field(default_factory=dict)
    route: Route | None = None
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation_interval: float = 10.0
    retry_initial: float = 1.0
    retry_max: float = 60.0


class _Reader:
    """Typed access to a YAML mapping with paths for messages."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: must be a mapping")
        self.data, self.where = data, where

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def only(self, *allowed: str) -> None:
        for k in self.data:
            if k not in allowed:
                raise ConfigError(f"{self.at(str(k))}: unknown field (expected one of {', '.join(allowed)})")

    def text(self, key: str, default: str | None = None) -> str:
        v = self.data.get(key, default)
        if v is None:
            raise ConfigError(f"{self.at(key)}: required")
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ConfigError(f"{self.at(key)}: must be a string")
        return str(v)

    def duration(self, key: str, default: float) -> float:
        return parse_duration(self.data[key], self.at(key)) if key in self.data else default

    def seq(self, key: str) -> list[Any]:
        v = self.data.get(key) or []
        if isinstance(v, str):
            return [v]
        if not isinstance(v, list):
            raise ConfigError(f"{self.at(key)}: must be a list")
        return v

    def secret(self, key: str) -> SecretRef | None:
        if key not in self.data:
            return None
        r = _Reader(self.data[key], self.at(key))
        r.only("name", "key")
        return SecretRef(r.text("name"), r.text("key"))


def _webhook(data: Any, where: str) -> WebhookSpec:
    r = _Reader(data, where)
    r.only("url", "urlSecret")
    spec = WebhookSpec(r.text("url", ""), r.secret("urlSecret"))
    if bool(spec.url) == bool(spec.url_secret):
        raise ConfigError(f"{where}: give exactly one of url and urlSecret")
    if spec.url and not spec.url.startswith(("http://", "https://")):
        raise ConfigError(f"{r.at('url')}: must be an http:// or https:// URL")
    return spec


def _email(data: Any, where: str) -> EmailSpec:
    r = _Reader(data, where)
    r.only("to", "from", "smarthost", "tls", "username", "passwordSecret", "insecureSkipVerify", "caSecret")
    to = tuple(str(t) for t in r.seq("to"))
    if not to or not all("@" in t for t in to):
        raise ConfigError(f"{r.at('to')}: one or more email addresses required")
    host, sep, port = r.text("smarthost").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{r.at('smarthost')}: must be host:port")
    tls = r.text("tls", "starttls")
    if tls not in ("starttls", "tls", "none"):
        raise ConfigError(f"{r.at('tls')}: must be starttls, tls or none")
    secret = r.secret("passwordSecret")
    username = r.text("username", "")
    if bool(secret) != bool(username):
        raise ConfigError(f"{where}: username and passwordSecret go together")
    return EmailSpec(to, r.text("from", f"bosun@{host}"), host, int(port), tls, username, secret,
                     bool(data.get("insecureSkipVerify", False)), r.secret("caSecret"))


def _receiver(data: Any, where: str) -> ReceiverSpec:
    r = _Reader(data, where)
    r.only("name", "webhooks", "emails")
    webhooks = tuple(_webhook(w, f"{r.at('webhooks')}[{i}]") for i, w in enumerate(r.seq("webhooks")))
    emails = tuple(_email(e, f"{r.at('emails')}[{i}]") for i, e in enumerate(r.seq("emails")))
    return ReceiverSpec(r.text("name"), webhooks, emails)


def _route(data: Any, where: str, parent: Route | None, receivers: dict[str, ReceiverSpec]) -> Route:
    r = _Reader(data, where)
    r.only("receiver", "match", "groupBy", "groupWait", "groupInterval", "repeatInterval", "routes")
    receiver = r.text("receiver", parent.receiver if parent else None)
    if receiver not in receivers:
        raise ConfigError(f"{r.at('receiver')}: no receiver named {receiver!r}")
    match = _Reader(data.get("match") or {}, r.at("match")).data
    group_by = tuple(str(x) for x in r.seq("groupBy")) or (parent.group_by if parent else DEFAULT_GROUP_BY)
    for label in (*match, *group_by):
        if not _LABEL.match(str(label)):
            raise ConfigError(f"{where}: {label!r} is not a label name")
    base = parent or Route(receiver)
    route = Route(receiver, tuple((str(k), str(v)) for k, v in match.items()), group_by,
                  r.duration("groupWait", base.group_wait), r.duration("groupInterval", base.group_interval),
                  r.duration("repeatInterval", base.repeat_interval))
    children = tuple(_route(c, f"{r.at('routes')}[{i}]", route, receivers) for i, c in enumerate(r.seq("routes")))
    return Route(route.receiver, route.match, route.group_by, route.group_wait, route.group_interval,
                 route.repeat_interval, children)


def parse_config(text: str, known_rules: frozenset[str]) -> AlertingConfig:
    """``config.yaml`` -> :class:`AlertingConfig`, or :class:`ConfigError` (one line)."""
    data = load_yaml(text, lambda message: ConfigError(f"{CONFIG_KEY}: {message}"))
    r = _Reader(data if data is not None else {}, "")
    r.only("receivers", "route", "rules", "evaluationInterval", "delivery")
    receivers: dict[str, ReceiverSpec] = {}
    for i, item in enumerate(r.seq("receivers")):
        rec = _receiver(item, f"receivers[{i}]")
        if rec.name in receivers:
            raise ConfigError(f"receivers[{i}].name: {rec.name!r} given twice")
        receivers[rec.name] = rec
    route: Route | None = None
    if "route" in r.data:
        route = _route(r.data["route"], "route", None, receivers)
    elif receivers:
        route = Route(next(iter(receivers)))
    rules: dict[str, dict[str, Any]] = {}
    for name, override in _Reader(r.data.get("rules") or {}, "rules").data.items():
        if name not in known_rules:
            raise ConfigError(f"rules.{name}: no such rule (built-in: {', '.join(sorted(known_rules))})")
        o = _Reader(override or {}, f"rules.{name}")
        o.only("for", "keepFiringFor", "enabled", "labels", "annotations")
        rules[str(name)] = {"for": o.duration("for", -1), "keepFiringFor": o.duration("keepFiringFor", -1),
                            "enabled": bool(o.data.get("enabled", True)),
                            "labels": {str(k): str(v) for k, v in _Reader(o.data.get("labels") or {},
                                                                           o.at("labels")).data.items()},
                            "annotations": {str(k): str(v) for k, v in
                                            _Reader(o.data.get("annotations") or {}, o.at("annotations")).data.items()}}
    d = _Reader(r.data.get("delivery") or {}, "delivery")
    d.only("retryInitial", "retryMax")
    return AlertingConfig(receivers, route, rules, r.duration("evaluationInterval", 10.0),
                          d.duration("retryInitial", 1.0), d.duration("retryMax", 60.0))
