"""Inter-pod affinity and anti-affinity (required: a filter; preferred: a score).

Counts of matching pods per node come from the snapshot's incremental label counts; a term's
topologyKey turns them into domains with one ``bincount``. Existing pods' required
anti-affinity is kept by the snapshot grouped per distinct term, so the symmetric check
costs one selector match per distinct term, not per existing pod.
"""

from __future__ import annotations

import numpy as np

from bosun.scheduler.framework import CycleState, FilterResult, FloatArray
from bosun.scheduler.plugins._topology import domain_totals, has_key, in_domains_with
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import BoolArray, Snapshot

AFFINITY = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"


def affinity_ok(pod: PodInfo, snap: Snapshot) -> BoolArray:
    ok: BoolArray = np.ones(snap.cap, bool)
    if not pod.affinity:
        return ok
    any_match = False
    per_term = []
    for term in pod.affinity:
        counts = snap.matching_counts(term)
        any_match = any_match or bool(counts[snap.valid].any())
        per_term.append((term, counts))
    if not any_match and all(t.matches(pod.namespace, pod.labels) for t in pod.affinity):
        # The first pod of a group that must be together may go anywhere with the keys.
        for term in pod.affinity:
            ok &= has_key(snap, term.topology_key)
        return ok
    for term, counts in per_term:
        ok &= in_domains_with(snap, term.topology_key, counts)
    return ok


def anti_affinity_ok(pod: PodInfo, snap: Snapshot) -> BoolArray:
    ok: BoolArray = np.ones(snap.cap, bool)
    for term in pod.anti_affinity:
        ok &= ~in_domains_with(snap, term.topology_key, snap.matching_counts(term))
    return ok


def existing_anti_affinity_ok(pod: PodInfo, snap: Snapshot) -> BoolArray:
    ok: BoolArray = np.ones(snap.cap, bool)
    for term, counts in list(snap.anti_groups.items()):
        if term.matches(pod.namespace, pod.labels):
            ok &= ~in_domains_with(snap, term.topology_key, counts)
    return ok


class InterPodAffinity:
    name = "InterPodAffinity"

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def relevant(self, pod: PodInfo) -> bool:
        # Existing pods' anti-affinity can reject any pod, so only an empty set skips this.
        return bool(pod.affinity or pod.anti_affinity or self.snap.anti_groups)

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult:
        aff = affinity_ok(pod, snap)
        anti = anti_affinity_ok(pod, snap)
        existing = existing_anti_affinity_ok(pod, snap)
        ok = aff & anti & existing
        # Each node is charged to the first rule it breaks, in Kubernetes' order.
        reasons = [(~aff, AFFINITY), (aff & ~anti, ANTI_AFFINITY), (aff & anti & ~existing, EXISTING_ANTI_AFFINITY)]
        return FilterResult(ok, reasons=reasons)


class InterPodAffinityPreference:
    """Score: weight x matching pods in the node's domain (affinity up, anti-affinity down)."""

    name = "InterPodAffinityPreference"

    def relevant(self, pod: PodInfo) -> bool:
        return bool(pod.preferred_affinity or pod.preferred_anti_affinity)

    def score(self, pod: PodInfo, snap: Snapshot, feasible: BoolArray, state: CycleState) -> FloatArray:
        out = np.zeros(snap.cap)
        for sign, terms in ((1, pod.preferred_affinity), (-1, pod.preferred_anti_affinity)):
            for term in terms:
                out += sign * term.weight * domain_totals(snap, term.topology_key, snap.matching_counts(term))
        return out
