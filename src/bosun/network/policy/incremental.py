"""The node's policy state kept up to date incrementally: what :func:`rules.pod_rules` and
:func:`render.wanted` compute from scratch, recomputed only for the pods a change concerns.

During a rolling update every pod event (bound, address, ready) used to recompute every
local pod's rules, each resolving every rule's peers against every pod of the cluster. Here:

- a rule's peers (:class:`rules.PeerSet`) are resolved once per rule, and again only when
  what peers can depend on changed (a pod's namespace, labels, address or named ports, or a
  namespace's labels; a pod becoming ready changes none of these);
- a local pod's rules are rebuilt only when its own inputs (uid, address, namespace, labels,
  named ports), the policies that select it, or the peer sets of their rules changed;
- a pod's chain lines are rendered only when its rules changed.

The result equals the full computation's for the same state (a test checks that over random
sequences of changes), so the committed nftables state is the same either way.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from bosun.api.selectors import LabelSelector, SelectorError, label_selector_from_dict
from bosun.network.policy import render
from bosun.network.policy.render import Wanted
from bosun.network.policy.rules import (
    Cluster,
    PeerSet,
    PodRules,
    Rule,
    named_ports,
    pod_ip,
    policy_types,
    resolve_peers,
    rule_for,
)

Obj = dict[str, Any]
Chains = list[tuple[str, str, list[str]]]
# (policy uid, resourceVersion, "ingress" | "egress", index of the rule)
RuleKey = tuple[str, str, str, int]


def _labels_key(obj: Obj) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(((obj.get("metadata") or {}).get("labels") or {}).items()))


def _peer_view(pods: Iterable[Obj], namespaces: Iterable[Obj]) -> Hashable:
    """Everything a peer set can depend on, comparable between syncs."""
    return (frozenset((str(p["metadata"].get("uid")), p["metadata"].get("namespace"), _labels_key(p), pod_ip(p),
                       named_ports(p)) for p in pods if pod_ip(p)),
            frozenset((str(n["metadata"]["name"]), _labels_key(n)) for n in namespaces))


def _policy_id(policy: Obj) -> tuple[str, str]:
    meta = policy["metadata"]
    return (str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"), str(meta.get("resourceVersion")))


class IncrementalRules:
    """Holds the caches between calls of :meth:`wanted`; ``recomputed`` names the uids of
    the pods whose rules the last call rebuilt (what a change cost, for logs and tests)."""

    def __init__(self) -> None:
        self._view: Hashable = None
        self._peers: dict[RuleKey, PeerSet] = {}
        self._selectors: dict[tuple[str, str], LabelSelector | None] = {}
        self._pods: dict[str, tuple[Hashable, PodRules | None, Chains]] = {}
        self.recomputed: list[str] = []

    def wanted(self, local_pods: Iterable[Obj], all_pods: Iterable[Obj], namespaces: Iterable[Obj],
               policies: Iterable[Obj]) -> Wanted:
        all_pods, namespaces, policies = list(all_pods), list(namespaces), list(policies)
        if not policies:
            # Nothing isolates any pod (the common case): no peer set to resolve and no pod's
            # key to hash. Computing them on each sync of a burst (10 a second while 100 pods
            # start) was a twentieth of the node's event loop for nothing.
            self._view, self._peers, self._selectors, self._pods = None, {}, {}, {}
            self.recomputed = []
            return render.assemble([])
        view = _peer_view(all_pods, namespaces)
        cluster = Cluster(all_pods, namespaces)
        if view != self._view:
            self._view = view
            self._refresh_peers(policies, cluster)
        live = {_policy_id(p) for p in policies}
        self._selectors = {k: v for k, v in self._selectors.items() if k in live}
        self._peers = {k: v for k, v in self._peers.items() if k[:2] in live}
        self.recomputed = []
        pods: dict[str, tuple[Hashable, PodRules | None, Chains]] = {}
        out: list[tuple[str, Chains]] = []
        for pod in local_pods:
            ip = pod_ip(pod)
            if not ip:
                continue
            uid = str(pod["metadata"]["uid"])
            selecting = [p for p in policies if self._selects(p, pod)]
            key = self._pod_key(pod, ip, selecting, cluster)
            cached = self._pods.get(uid)
            if cached is not None and cached[0] == key:
                entry = cached
            else:
                self.recomputed.append(uid)
                rules = self._build(pod, ip, selecting, cluster)
                entry = (key, rules, render.pod_chains(rules) if rules is not None else [])
            pods[uid] = entry
            if entry[1] is not None:
                out.append((ip, entry[2]))
        self._pods = pods
        return render.assemble(out)

    def _refresh_peers(self, policies: list[Obj], cluster: Cluster) -> None:
        """Resolve every rule's peers again; a set equal to the last one keeps its identity."""
        fresh: dict[RuleKey, PeerSet] = {}
        for policy in policies:
            uid, rv = _policy_id(policy)
            ns = str(policy["metadata"].get("namespace"))
            spec = policy.get("spec") or {}
            for direction, field in (("ingress", "from"), ("egress", "to")):
                for i, r in enumerate(spec.get(direction) or []):
                    key = (uid, rv, direction, i)
                    peer_set = resolve_peers(r.get(field), ns, cluster)
                    old = self._peers.get(key)
                    fresh[key] = old if old is not None and old == peer_set else peer_set
        self._peers = fresh

    def _peer_set(self, policy: Obj, direction: str, index: int, cluster: Cluster) -> PeerSet:
        uid, rv = _policy_id(policy)
        key = (uid, rv, direction, index)
        found = self._peers.get(key)
        if found is None:  # a policy that arrived since the view last changed
            rule = ((policy.get("spec") or {}).get(direction) or [])[index]
            found = resolve_peers(rule.get("from" if direction == "ingress" else "to"),
                                  str(policy["metadata"].get("namespace")), cluster)
            self._peers[key] = found
        return found

    def _selects(self, policy: Obj, pod: Obj) -> bool:
        if policy["metadata"].get("namespace") != pod["metadata"].get("namespace"):
            return False
        pid = _policy_id(policy)
        if pid not in self._selectors:
            try:
                self._selectors[pid] = label_selector_from_dict((policy.get("spec") or {}).get("podSelector") or {})
            except SelectorError:
                self._selectors[pid] = None  # the API validates selectors; an unreadable one selects nothing
        sel = self._selectors[pid]
        return sel is not None and sel.matches(pod["metadata"].get("labels") or {})

    def _pod_key(self, pod: Obj, ip: str, selecting: list[Obj], cluster: Cluster) -> Hashable:
        """All a pod's rules depend on: itself, its policies and their rules' peer sets."""
        sets = tuple(self._peer_set(p, d, i, cluster)
                     for p in selecting for d in ("ingress", "egress")
                     for i in range(len((p.get("spec") or {}).get(d) or [])))
        return (ip, pod["metadata"].get("namespace"), named_ports(pod), tuple(_policy_id(p) for p in selecting), sets)

    def _build(self, pod: Obj, ip: str, selecting: list[Obj], cluster: Cluster) -> PodRules | None:
        """As :func:`rules.pod_rules` for one pod, with the peer sets resolved already."""
        ingress: list[Rule] | None = None
        egress: list[Rule] | None = None
        for policy in selecting:
            spec = policy.get("spec") or {}
            types = policy_types(policy)
            if "Ingress" in types:
                ingress = ingress or []
                for i, r in enumerate(spec.get("ingress") or []):
                    rule = rule_for(self._peer_set(policy, "ingress", i, cluster), r.get("ports") or [], pod, True)
                    if rule is not None:
                        ingress.append(rule)
            if "Egress" in types:
                egress = egress or []
                for i, r in enumerate(spec.get("egress") or []):
                    rule = rule_for(self._peer_set(policy, "egress", i, cluster), r.get("ports") or [], pod, False)
                    if rule is not None:
                        egress.append(rule)
        if ingress is None and egress is None:
            return None
        return PodRules(str(pod["metadata"]["uid"]), ip, None if ingress is None else tuple(ingress),
                        None if egress is None else tuple(egress))
