"""The user rules in force: every ConfigMap labelled ``bosun.io/alert-rules``, parsed once per
resourceVersion into :class:`~bosun.alerting.exprsource.ExprRuleSource` values. A value that
does not parse (it escaped admission) is skipped with its error kept, for an Event and for
``bosun alerts rules``; the ConfigMap's other values still count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bosun.alerting.exprsource import ExprRuleSource
from bosun.alerting.rulefile import RuleFileError, is_rule_configmap, parse_rule_file

Obj = dict[str, Any]


@dataclass(slots=True)
class _Loaded:
    version: str
    sources: list[ExprRuleSource]
    errors: dict[str, str]  # key of the ConfigMap's data -> error


@dataclass
class UserRules:
    loaded: dict[str, _Loaded] = field(default_factory=dict)  # namespace/name -> what it holds

    def sync(self, configmaps: Iterable[Obj]) -> list[tuple[Obj, str]]:
        """Take the current rule ConfigMaps; returns (ConfigMap, error) for each bad value that
        is new (so each is reported once)."""
        seen: set[str] = set()
        news: list[tuple[Obj, str]] = []
        for cm in configmaps:
            if not is_rule_configmap(cm):
                continue
            m = cm.get("metadata") or {}
            ident = f"{m.get('namespace', '')}/{m.get('name', '')}"
            seen.add(ident)
            version = str(m.get("resourceVersion", ""))
            have = self.loaded.get(ident)
            if have is not None and have.version == version:
                continue
            sources: list[ExprRuleSource] = []
            errors: dict[str, str] = {}
            for key, text in sorted((cm.get("data") or {}).items()):
                try:
                    sources += [ExprRuleSource(r) for r in parse_rule_file(str(text), f"{ident}[{key}]")]
                except RuleFileError as e:
                    errors[key] = str(e)
                    news.append((cm, f"{key}: {e}"))
            self.loaded[ident] = _Loaded(version, sources, errors)
        for gone in set(self.loaded) - seen:
            del self.loaded[gone]
        return news

    def sources(self) -> list[ExprRuleSource]:
        return [s for ident in sorted(self.loaded) for s in self.loaded[ident].sources]

    def describe(self) -> list[dict[str, Any]]:
        """The rules and bad files, as ``bosun alerts rules`` prints them."""
        rows: list[dict[str, Any]] = []
        for ident in sorted(self.loaded):
            got = self.loaded[ident]
            for s in got.sources:
                row: dict[str, Any] = {"alert": s.rule.name, "source": s.rule.source, "expr": s.rule.expr_text,
                                       "for": f"{s.rule.for_:g}s", "series": len(s.results),
                                       "health": "err" if s.error else ("ok" if s.evaluated_at else "unknown")}
                if s.error:
                    row["error"] = s.error
                rows.append(row)
            for key, error in sorted(got.errors.items()):
                rows.append({"alert": "", "source": f"{ident}[{key}]", "expr": "", "health": "invalid",
                             "error": error})
        return rows
