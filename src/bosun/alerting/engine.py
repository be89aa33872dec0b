"""The life of each alert, as Prometheus' rule manager keeps it: a rule instance that holds is
*pending*; once it has held for ``for:`` it is *firing*; when it stops holding it stays firing
for ``keepFiringFor`` and is then resolved (dropped here; the notifier remembers what it told
receivers, so it can tell them it is over).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bosun.alerting.builtin import RuleSettings
from bosun.alerting.model import FIRING, PENDING, Alert, RuleSource, fingerprint


@dataclass(slots=True)
class Transitions:
    fired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


class Engine:
    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}

    def evaluate(self, rules: list[tuple[RuleSource, RuleSettings]], now: float) -> Transitions:
        """One evaluation of every rule; returns the alerts that started or stopped firing."""
        out = Transitions()
        seen: set[str] = set()
        keep: dict[str, float] = {}
        for source, settings in rules:
            for cand in source.active(now):
                labels = {**cand.labels, **settings.labels, "alertname": source.name}
                fp = fingerprint(labels)
                seen.add(fp)
                alert = self.alerts.get(fp)
                if alert is None:
                    alert = self.alerts[fp] = Alert(source.name, labels, {**cand.annotations, **settings.annotations},
                                                    fp, PENDING, now, now, involved=cand.involved)
                alert.last_seen = now
                alert.annotations = {**cand.annotations, **settings.annotations}
                alert.involved = cand.involved
                if alert.state == PENDING and now - alert.active_since >= settings.for_:
                    alert.state, alert.fired_at = FIRING, now
                    out.fired.append(alert)
            keep[source.name] = settings.keep_firing_for
        for fp, alert in list(self.alerts.items()):
            if fp in seen:
                continue
            if alert.state == FIRING and now - alert.last_seen < keep.get(alert.name, 0.0):
                continue
            del self.alerts[fp]
            if alert.state == FIRING:
                out.resolved.append(alert)
        return out

    def firing(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.state == FIRING]
