"""The RBAC authorizer: Roles, ClusterRoles and their bindings, indexed per subject.

The objects come from the API server's own watch cache (:meth:`RBACAuthorizer.observe`),
never from the store per request. Any RBAC change marks the index stale; the next question
rebuilds it (bindings change rarely, requests come thousands a second). A request then
looks only at the rule sets bound to its user name and groups.

ClusterRoles with an ``aggregationRule`` get the rules of every ClusterRole their selectors
match, as Kubernetes' aggregation controller writes them (``admin``/``edit``/``view`` are
built this way, so a CRD's ``aggregate-to-view`` role extends ``view``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bosun.security.authz import ALLOW, NO_OPINION, Attributes, Verdict
from bosun.security.authz.rules import Rule, compile_rules
from bosun.security.identity import User

GROUP = "rbac.authorization.k8s.io"
ROLES, CLUSTER_ROLES = f"roles.{GROUP}", f"clusterroles.{GROUP}"
ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS = f"rolebindings.{GROUP}", f"clusterrolebindings.{GROUP}"
KINDS = frozenset({ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS})

Obj = dict[str, Any]
# (namespace the rules apply in, or None for everywhere, and the rules)
Grant = tuple[str | None, tuple[Rule, ...]]


def subject_keys(s: Any, binding_namespace: str | None = None) -> str | None:
    """The user-or-group key a binding subject names (ServiceAccounts are users). A
    ServiceAccount named without a namespace in a RoleBinding is the binding's namespace's,
    as upstream's authorizer reads it."""
    if not isinstance(s, dict):
        return None
    kind, name = s.get("kind"), str(s.get("name") or "")
    if kind == "User":
        return f"u:{name}"
    if kind == "Group":
        return f"g:{name}"
    if kind == "ServiceAccount":
        return f"u:system:serviceaccount:{s.get('namespace') or binding_namespace or ''}:{name}"
    return None


def _label_match(selector: Any, labels: dict[str, str]) -> bool:
    if not isinstance(selector, dict):
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def aggregated_rules(role: Obj, cluster_roles: Iterable[Obj]) -> list[Any] | None:
    """The rules an aggregated ClusterRole must hold, or None if it is not aggregated."""
    agg = role.get("aggregationRule")
    if not isinstance(agg, dict):
        return None
    selectors = agg.get("clusterRoleSelectors") or []
    own = role["metadata"]["name"]
    out: list[Any] = []
    for other in sorted(cluster_roles, key=lambda o: str(o["metadata"]["name"])):
        if other["metadata"]["name"] == own:
            continue
        labels = other["metadata"].get("labels") or {}
        if any(_label_match(sel, labels) for sel in selectors):
            for r in other.get("rules") or []:
                if r not in out:
                    out.append(r)
    return out


class RBACAuthorizer:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Obj]] = {k: {} for k in KINDS}
        self._revisions: dict[str, int] = {}
        self._index: dict[str, list[Grant]] | None = None

    # -- keeping current ---------------------------------------------------------------

    def observe(self, group_plural: str, key: str, obj: Obj | None, revision: int) -> None:
        """An RBAC object was written (``obj``) or deleted (None) at ``revision``."""
        table = self.objects.get(group_plural)
        if table is None or revision < self._revisions.get(key, 0):
            return
        self._revisions[key] = revision
        if obj is None:
            table.pop(key, None)
        else:
            table[key] = obj
        self._index = None

    def cluster_role(self, name: str) -> Obj | None:
        return self.objects[CLUSTER_ROLES].get(f"/registry/{CLUSTER_ROLES}/{name}")

    def _role_rules(self, ref: Any, namespace: str | None) -> tuple[Rule, ...]:
        if not isinstance(ref, dict):
            return ()
        name = str(ref.get("name") or "")
        if ref.get("kind") == "ClusterRole":
            role = self.cluster_role(name)
            if role is None:
                return ()
            rules = aggregated_rules(role, self.objects[CLUSTER_ROLES].values())
            return compile_rules(rules if rules is not None else role.get("rules") or [])
        if ref.get("kind") == "Role" and namespace:
            role = self.objects[ROLES].get(f"/registry/{ROLES}/{namespace}/{name}")
            return compile_rules(role.get("rules") or []) if role is not None else ()
        return ()

    def _build(self) -> dict[str, list[Grant]]:
        index: dict[str, list[Grant]] = {}
        for kind, scoped in ((CLUSTER_ROLE_BINDINGS, False), (ROLE_BINDINGS, True)):
            for b in self.objects[kind].values():
                ns = b["metadata"].get("namespace") if scoped else None
                if scoped and not ns:
                    continue
                rules = self._role_rules(b.get("roleRef"), ns)
                if not rules:
                    continue
                for s in b.get("subjects") or []:
                    key = subject_keys(s, ns)
                    if key is not None:
                        index.setdefault(key, []).append((ns, rules))
        return index

    def grants(self, user: User) -> list[Grant]:
        index = self._index
        if index is None:
            index = self._index = self._build()
        out = list(index.get(f"u:{user.name}", ()))
        for g in user.groups:
            out.extend(index.get(f"g:{g}", ()))
        return out

    # -- questions ---------------------------------------------------------------------

    def authorize(self, a: Attributes) -> Verdict:
        for ns, rules in self.grants(a.user):
            if ns is not None and (not a.resource_request or ns != a.namespace):
                continue
            for r in rules:
                if r.allows(a):
                    return ALLOW
        return NO_OPINION

    def rules_for(self, user: User, namespace: str) -> list[Rule]:
        """What ``user`` may do in ``namespace`` (SelfSubjectRulesReview, ``can-i --list``)."""
        out: list[Rule] = []
        for ns, rules in self.grants(user):
            if ns is None or ns == namespace:
                out.extend(r for r in rules if r not in out)
        return out
