"""User rules as :class:`~bosun.alerting.model.RuleSource` values: each evaluates its expression
through a :class:`Querier` (the API server's ``/metrics/query``, where the history lives) and
holds for every series in the answer.

The engine's ``active`` is synchronous and evaluation is a request, so a rule is first
``refresh``-ed (asynchronously, all rules at once) and then read. Annotations are templates
in the two forms rule files use most, ``{{ $labels.name }}`` and ``{{ $value }}``; any other
``{{ ... }}`` is left as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bosun.alerting.builtin import RuleSettings
from bosun.alerting.model import Candidate
from bosun.alerting.rulefile import ExprRule

_TEMPLATE = re.compile(r"\{\{\s*(?:\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)|\$value|humanize\s+\$value)\s*\}\}")


class QueryError(Exception):
    """The query could not be answered (the API server is away, or refused it)."""


class Querier(Protocol):
    async def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """The instant vector of ``expr`` now: (labels, value) per series."""
        ...


@runtime_checkable
class Refreshable(Protocol):
    """A rule source that must be refreshed (asynchronously) before each evaluation."""

    async def refresh(self, querier: Querier, now: float) -> None: ...


def _value(v: float) -> str:
    return f"{v:g}"


def expand(template: str, labels: Mapping[str, str], value: float) -> str:
    def sub(m: re.Match[str]) -> str:
        return labels.get(m.group(1), "") if m.group(1) else _value(value)

    return _TEMPLATE.sub(sub, template)


@dataclass
class ExprRuleSource:
    rule: ExprRule
    results: list[tuple[dict[str, str], float]] = field(default_factory=list)
    error: str = ""
    evaluated_at: float = 0.0

    @property
    def name(self) -> str:
        return self.rule.name

    def settings(self) -> RuleSettings:
        # Annotations are per instance (templated), so the candidates carry them, not the settings.
        return RuleSettings(self.rule.for_, self.rule.keep_firing_for, dict(self.rule.labels))

    async def refresh(self, querier: Querier, now: float) -> None:
        try:
            self.results = await querier.query(self.rule.expr_text)
            self.error = ""
        except QueryError as e:
            # Keep what the last evaluation found: an API server restarting must not resolve every alert.
            self.error = str(e)
        self.evaluated_at = now

    def active(self, now: float) -> Iterable[Candidate]:
        for labels, value in self.results:
            clean = {k: v for k, v in labels.items() if k != "__name__"}
            ann = {k: expand(t, clean, value) for k, t in self.rule.annotations.items()}
            ann.setdefault("summary", f"{self.rule.name}: {self.rule.expr_text} = {_value(value)}")
            yield Candidate(clean, ann)
