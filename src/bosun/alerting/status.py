"""What users read back: the ``bosun-alerts`` ConfigMap (kube-system) that lists the active
alerts and the state of the configuration, so ``kubectl get configmap bosun-alerts -n
kube-system -o yaml`` and ``bosun alerts ls`` show what is firing without a new kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from bosun.alerting.model import Alert

STATUS_NAME = "bosun-alerts"
ALERTS_KEY = "alerts.yaml"
RULES_KEY = "rules.yaml"
CONFIG_STATUS_KEY = "config"
OMITTED_KEY = "omitted"
MAX_ROWS = 500  # a ConfigMap holds at most 1 MiB: a thousand dead hollow nodes must not overflow it


def _stamp(t: float | None) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


def render(alerts: Iterable[Alert], muted: Mapping[str, str], config_status: str,
           rules: Sequence[Mapping[str, Any]] = ()) -> dict[str, str]:
    """The ConfigMap's data: stable while nothing changes, so an unchanged state is no write.
    ``rules`` are the user rules (and their files' errors), when there are any."""
    rows: list[dict[str, Any]] = []
    for a in sorted(alerts, key=lambda a: (a.name, sorted(a.labels.items()))):
        row: dict[str, Any] = {"alertname": a.name, "state": a.state, "since": _stamp(a.fired_at or a.active_since),
                               "summary": a.summary, "labels": dict(sorted(a.labels.items()))}
        if muted.get(a.fingerprint):
            row["silencedBy"] = muted[a.fingerprint]
        rows.append(row)
    text = yaml.dump(rows[:MAX_ROWS], Dumper=yaml.CSafeDumper, sort_keys=False) if rows else "[]\n"
    data = {ALERTS_KEY: text,
            CONFIG_STATUS_KEY: config_status}
    if len(rows) > MAX_ROWS:
        data[OMITTED_KEY] = str(len(rows) - MAX_ROWS)
    if rules:
        data[RULES_KEY] = yaml.dump([dict(r) for r in rules[:MAX_ROWS]], Dumper=yaml.CSafeDumper, sort_keys=False)
    return data


def omitted(data: Mapping[str, str]) -> int:
    """How many alerts the list left out (beyond ``MAX_ROWS``)."""
    return int(data.get(OMITTED_KEY) or 0)


def parse(data: Mapping[str, str]) -> tuple[list[dict[str, Any]], str]:
    """The alerts and config status of a ``bosun-alerts`` ConfigMap's data."""
    rows = yaml.load(data.get(ALERTS_KEY) or "[]", Loader=yaml.CSafeLoader) or []
    return [r for r in rows if isinstance(r, dict)], str(data.get(CONFIG_STATUS_KEY, ""))


def parse_rules(data: Mapping[str, str]) -> list[dict[str, Any]]:
    """The user rules a ``bosun-alerts`` ConfigMap lists (``bosun alerts rules``)."""
    rows = yaml.load(data.get(RULES_KEY) or "[]", Loader=yaml.CSafeLoader) or []
    return [r for r in rows if isinstance(r, dict)]
