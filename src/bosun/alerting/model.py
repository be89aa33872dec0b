"""What an alert is, and the one Protocol a source of alerts implements.

A rule source answers one question: "which instances of this alert are true right now?".
The built-in sources read the API's objects (a pod in CrashLoopBackOff, a node not Ready);
a source over the metrics history (an expression such as ``rate(restarts[5m]) > 0``) plugs
in the same way, since the engine only sees :class:`Candidate` values and adds ``for:``,
labels and annotations from the configuration itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]
PENDING = "pending"
FIRING = "firing"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One instance of a rule that holds now: its identifying labels, its annotations, and
    the API object it concerns (Events about the alert are recorded on it), if any."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    involved: Obj | None = None


class RuleSource(Protocol):
    """A source of one alert (``name`` is its ``alertname``)."""

    name: str

    def active(self, now: float) -> Iterable[Candidate]:
        """The instances that hold at ``now`` (seconds since the epoch)."""
        ...


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable identity of an alert: the hash of its sorted label set, as Alertmanager's."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Alert:
    """An alert the engine tracks, from the first evaluation its rule held."""

    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    state: str
    active_since: float
    last_seen: float
    fired_at: float | None = None
    involved: Obj | None = None

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.name
