"""PolicyRule matching, as RBAC defines it, compiled once per rule.

Used by the RBAC authorizer (rules from Roles and ClusterRoles) and by the node authorizer
(its fixed rule set), so both read the same rule language: verbs, apiGroups, resources with
``resource/subresource`` and ``*/subresource``, resourceNames, nonResourceURLs with a
trailing ``*`` for prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bosun.security.authz import Attributes


def _strs(v: Any) -> tuple[str, ...]:
    return tuple(str(x) for x in v) if isinstance(v, list | tuple) else ()


@dataclass(frozen=True, slots=True)
class Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    urls: tuple[str, ...]
    source: Mapping[str, Any]

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Rule:
        return cls(frozenset(_strs(rule.get("verbs"))), frozenset(_strs(rule.get("apiGroups"))),
                   frozenset(_strs(rule.get("resources"))), frozenset(_strs(rule.get("resourceNames"))),
                   _strs(rule.get("nonResourceURLs")), rule)

    def allows(self, a: Attributes) -> bool:
        if "*" not in self.verbs and a.verb not in self.verbs:
            return False
        if not a.resource_request:
            return any(u == "*" or u == a.path or (u.endswith("*") and a.path.startswith(u[:-1])) for u in self.urls)
        if "*" not in self.api_groups and a.api_group not in self.api_groups:
            return False
        rs = self.resources
        if "*" not in rs:
            if a.subresource:
                if f"{a.resource}/{a.subresource}" not in rs and f"*/{a.subresource}" not in rs:
                    return False
            elif a.resource not in rs:
                return False
        return not self.resource_names or a.name in self.resource_names


def compile_rules(rules: Iterable[Any]) -> tuple[Rule, ...]:
    return tuple(Rule.of(r) for r in rules if isinstance(r, Mapping))


def rule(verbs: Iterable[str], groups: Iterable[str] = ("",), resources: Iterable[str] = (),
         names: Iterable[str] = ()) -> dict[str, Any]:
    """A PolicyRule in wire form (for the default roles and the node rules)."""
    out: dict[str, Any] = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        out["resourceNames"] = list(names)
    return out


def url_rule(verbs: Iterable[str], urls: Iterable[str]) -> dict[str, Any]:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}
