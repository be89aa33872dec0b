"""What users read back: the ``bosun-alerts`` ConfigMap (kube-system) that lists the active
alerts and the state of the configuration, so ``kubectl get configmap bosun-alerts -n
kube-system -o yaml`` and ``bosun alerts ls`` show what is firing without a new kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from bosun.alerting.model import Alert

STATUS_NAME = "bosun-alerts"
ALERTS_KEY = "alerts.yaml"
CONFIG_STATUS_KEY = "config"


def _stamp(t: float | None) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


def render(alerts: Iterable[Alert], muted: Mapping[str, str], config_status: str) -> dict[str, str]:
    """The ConfigMap's data: stable while nothing changes, so an unchanged state is no write."""
    rows: list[dict[str, Any]] = []
    for a in sorted(alerts, key=lambda a: (a.name, sorted(a.labels.items()))):
        row: dict[str, Any] = {"alertname": a.name, "state": a.state, "since": _stamp(a.fired_at or a.active_since),
                               "summary": a.summary, "labels": dict(sorted(a.labels.items()))}
        if muted.get(a.fingerprint):
            row["silencedBy"] = muted[a.fingerprint]
        rows.append(row)
    return {ALERTS_KEY: yaml.safe_dump(rows, sort_keys=False) if rows else "[]\n", CONFIG_STATUS_KEY: config_status}


def parse(data: Mapping[str, str]) -> tuple[list[dict[str, Any]], str]:
    """The alerts and config status of a ``bosun-alerts`` ConfigMap's data."""
    rows = yaml.safe_load(data.get(ALERTS_KEY) or "[]") or []
    return [r for r in rows if isinstance(r, dict)], str(data.get(CONFIG_STATUS_KEY, ""))
