"""Which FlowSchema a request belongs to, and so its priority level and flow (upstream's
``flowcontrol.Classify``): the schemas are tried in ``matchingPrecedence`` order (then by name),
the first whose rules match the user (User, Group, ServiceAccount subjects) and the request
(``resourceRules`` or ``nonResourceRules``) wins; schemas naming a priority level that does
not exist are skipped; ``catch-all`` takes what nothing matched. The flow is the schema's name
and its distinguisher (the user's name for ``ByUser``, the namespace for ``ByNamespace``).

Each schema is compiled once into sets, and answers are remembered per (user, verb, resource,
namespace) or (user, verb, path): a server sees the same few shapes over and over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bosun.api.target import Decoded
from bosun.security.identity import User

Obj = dict[str, Any]
SA_PREFIX = "system:serviceaccount:"
CATCH_ALL = "catch-all"
# Answers remembered at most; the memory is emptied when full (the shapes a server sees are few).
MEMORY = 8192


def _names(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(str(v) for v in values)


@dataclass(frozen=True, slots=True)
class _Subjects:
    users: frozenset[str]
    groups: frozenset[str]
    accounts: frozenset[tuple[str, str]]  # (namespace, name); name may be "*"

    def match(self, user: User) -> bool:
        if "*" in self.users or user.name in self.users:
            return True
        if "*" in self.groups or not self.groups.isdisjoint(user.groups):
            return True
        if self.accounts and user.name.startswith(SA_PREFIX):
            ns, _, name = user.name[len(SA_PREFIX):].partition(":")
            return (ns, name) in self.accounts or (ns, "*") in self.accounts
        return False


def _subjects(items: list[Obj]) -> _Subjects:
    users, groups, accounts = set(), set(), set()
    for s in items:
        kind = s.get("kind")
        if kind == "User":
            users.add(str((s.get("user") or {}).get("name", "")))
        elif kind == "Group":
            groups.add(str((s.get("group") or {}).get("name", "")))
        elif kind == "ServiceAccount":
            sa = s.get("serviceAccount") or {}
            accounts.add((str(sa.get("namespace", "")), str(sa.get("name", ""))))
    return _Subjects(frozenset(users), frozenset(groups), frozenset(accounts))


def _any_or(values: frozenset[str], value: str) -> bool:
    return "*" in values or value in values


@dataclass(frozen=True, slots=True)
class _ResourceRule:
    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    namespaces: frozenset[str]
    cluster: bool

    def match(self, d: Decoded) -> bool:
        resource = f"{d.resource}/{d.subresource}" if d.subresource else d.resource
        if not (_any_or(self.verbs, d.verb) and _any_or(self.groups, d.group)
                and _any_or(self.resources, resource)):
            return False
        return self.cluster if not d.namespace else _any_or(self.namespaces, d.namespace)


@dataclass(frozen=True, slots=True)
class _URLRule:
    verbs: frozenset[str]
    exact: frozenset[str]
    prefixes: tuple[str, ...]  # "/apis/*" -> "/apis"

    def match(self, d: Decoded) -> bool:
        if not _any_or(self.verbs, d.verb):
            return False
        path = d.path
        if "*" in self.exact or path in self.exact:
            return True
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)


def _url_rule(r: Obj) -> _URLRule:
    urls = [str(u) for u in r.get("nonResourceURLs") or []]
    return _URLRule(_names(r.get("verbs") or []), frozenset(u for u in urls if not u.endswith("/*")),
                    tuple(u[:-2] for u in urls if u.endswith("/*")))


@dataclass(frozen=True, slots=True)
class _Rule:
    subjects: _Subjects
    resources: tuple[_ResourceRule, ...]
    urls: tuple[_URLRule, ...]

    def match(self, user: User, d: Decoded) -> bool:
        if not self.subjects.match(user):
            return False
        if d.resource_request:
            return any(r.match(d) for r in self.resources)
        return any(r.match(d) for r in self.urls)


@dataclass(frozen=True, slots=True)
class Schema:
    """A FlowSchema as the classifier uses it."""

    name: str
    uid: str
    level: str
    precedence: int
    distinguisher: str  # "ByUser", "ByNamespace" or ""
    rules: tuple[_Rule, ...]

    def match(self, user: User, d: Decoded) -> bool:
        return any(r.match(user, d) for r in self.rules)

    def flow(self, user: User, d: Decoded) -> str:
        if self.distinguisher == "ByUser":
            return user.name
        if self.distinguisher == "ByNamespace":
            return d.namespace
        return ""


def compile_schema(obj: Obj) -> Schema:
    spec = obj.get("spec") or {}
    rules = []
    for r in spec.get("rules") or []:
        resources = tuple(
            _ResourceRule(_names(x.get("verbs") or []), _names(x.get("apiGroups") or []),
                          _names(x.get("resources") or []), _names(x.get("namespaces") or []),
                          bool(x.get("clusterScope")))
            for x in r.get("resourceRules") or [])
        urls = tuple(_url_rule(x) for x in r.get("nonResourceRules") or [])
        rules.append(_Rule(_subjects(r.get("subjects") or []), resources, urls))
    meta = obj.get("metadata") or {}
    return Schema(str(meta.get("name", "")), str(meta.get("uid", "")),
                  str((spec.get("priorityLevelConfiguration") or {}).get("name", "")),
                  int(spec.get("matchingPrecedence") or 1000),
                  str((spec.get("distinguisherMethod") or {}).get("type", "")), tuple(rules))


# What catch-all is when its object is missing (being recreated): everyone, ByUser.
_FALLBACK = Schema(CATCH_ALL, "", CATCH_ALL, 10000, "ByUser", ())


class Classifier:
    """The FlowSchemas in matching order; ``levels``: the priority levels that exist."""

    def __init__(self, schemas: Iterable[Schema], levels: Iterable[str]) -> None:
        known = set(levels)
        ordered = sorted((s for s in schemas if s.level in known), key=lambda s: (s.precedence, s.name))
        self.schemas = tuple(ordered)
        self.fallback = next((s for s in ordered if s.name == CATCH_ALL), _FALLBACK)
        self._memory: dict[tuple[Any, ...], tuple[Schema, str]] = {}

    def classify(self, user: User, d: Decoded) -> tuple[Schema, str]:
        """(the schema, the flow distinguisher) of a request."""
        if d.resource_request:
            key: tuple[Any, ...] = (user.name, user.groups, d.verb, d.group, d.resource, d.subresource, d.namespace)
        else:
            key = (user.name, user.groups, d.verb, d.path)
        found = self._memory.get(key)
        if found is not None:
            return found
        schema = next((s for s in self.schemas if s.match(user, d)), self.fallback)
        found = (schema, schema.flow(user, d))
        if len(self._memory) >= MEMORY:
            self._memory.clear()
        self._memory[key] = found
        return found
