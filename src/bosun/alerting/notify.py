"""Grouping and de-duplication, as Alertmanager's dispatcher: alerts routed to the same
integration with the same ``groupBy`` label values form one group, and a group produces one
message at a time.

* A new group waits ``groupWait`` (more alerts of a burst join it) before its first message.
* A change (an alert joins or resolves) is sent no sooner than ``groupInterval`` after the
  last message; with nothing new, the same alerts are repeated after ``repeatInterval``.
* Each of these times is kept to the moment, as Alertmanager's per-group timers do, not
  rounded up to the next evaluation: :attr:`Notifier.next_at` says when the earliest one is.
* What an integration has *heard* (``sent``) changes only when a message is delivered, so a
  receiver that was down gets the current state when it returns: firing alerts it missed,
  and the resolution of those it was told about. Muted (silenced) alerts are neither sent nor
  resolved until their silence ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from bosun.alerting.config import Route
from bosun.alerting.model import Alert


@dataclass(slots=True)
class Notification:
    integration: str
    group_key: str
    group_labels: dict[str, str]
    firing: list[Alert]
    resolved: list[Alert]

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    def same_as(self, other: Notification) -> bool:
        fps = {a.fingerprint for a in self.firing}, {a.fingerprint for a in self.resolved}
        return fps == ({a.fingerprint for a in other.firing}, {a.fingerprint for a in other.resolved})


@dataclass(slots=True)
class _Group:
    integration: str
    labels: dict[str, str]
    route: Route
    first_seen: float
    sent: dict[str, Alert] = field(default_factory=dict)
    last_sent: float | None = None
    inflight: Notification | None = None


# (alert) -> its route and the integrations of that route's receiver
Router = Callable[[Alert], tuple[Route, list[str]]]


class Notifier:
    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        # The earliest time a message may become due (as of the last :meth:`due`), None: none.
        self.next_at: float | None = None

    def due(self, router: Router | None, firing: list[Alert], muted: set[str], now: float) -> list[Notification]:
        """The messages to send now. ``firing`` are the unsilenced firing alerts, ``muted``
        the fingerprints of firing alerts a silence holds back; no router = no receivers."""
        current: dict[str, dict[str, Alert]] = {}
        if router is not None:
            for alert in firing:
                route, integrations = router(alert)
                labels = {k: alert.labels.get(k, "") for k in route.group_by}
                for integration in integrations:
                    key = integration + orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()
                    if key not in self.groups:
                        self.groups[key] = _Group(integration, labels, route, now)
                    self.groups[key].route = route
                    current.setdefault(key, {})[alert.fingerprint] = alert
        out: list[Notification] = []
        upcoming: list[float] = []
        for key, g in list(self.groups.items()):
            now_firing = current.get(key, {})
            resolved = [a for fp, a in g.sent.items() if fp not in now_firing and fp not in muted]
            if not now_firing and not g.sent and g.inflight is None:
                del self.groups[key]
                continue
            note = Notification(g.integration, key, g.labels, sorted(now_firing.values(), key=_order),
                                sorted(resolved, key=_order))
            if g.inflight is not None:
                if not note.same_as(g.inflight) and (note.firing or note.resolved):
                    g.inflight = note
                    out.append(note)
                continue
            heard = {fp for fp in g.sent if fp not in muted}
            changed = set(now_firing) != heard
            if g.last_sent is None:
                at = g.first_seen + g.route.group_wait if now_firing else None
            elif changed:
                at = g.last_sent + g.route.group_interval
            else:
                at = g.last_sent + g.route.repeat_interval if now_firing else None
            if at is None:
                continue
            if now >= at and (note.firing or note.resolved):
                g.inflight = note
                out.append(note)
            elif now < at:
                upcoming.append(at)
        self.next_at = min(upcoming, default=None)
        return out

    def delivered(self, note: Notification, now: float) -> None:
        """``note`` reached its integration: what it heard is now what the note said."""
        g = self.groups.get(note.group_key)
        if g is None:
            return
        told = {a.fingerprint for a in note.firing} | {a.fingerprint for a in note.resolved}
        g.sent = {**{fp: a for fp, a in g.sent.items() if fp not in told},
                  **{a.fingerprint: a for a in note.firing}}
        g.last_sent = now
        if g.inflight is note:
            g.inflight = None


def _order(a: Alert) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in sorted(a.labels.items()))
