"""Pod topology spread constraints: maxSkew between domains (DoNotSchedule: a filter;
ScheduleAnyway: a score), counting only nodes the pod could go to by node affinity, as
Kubernetes' default nodeAffinityPolicy=Honor does."""

from __future__ import annotations

import numpy as np

from bosun.scheduler.framework import CycleState, FilterResult, FloatArray
from bosun.scheduler.plugins._topology import domain_totals, has_key
from bosun.scheduler.plugins.nodeaffinity import required_mask
from bosun.scheduler.podinfo import AffinityTerm, PodInfo, SpreadConstraint
from bosun.scheduler.snapshot import BoolArray, IntArray, Snapshot

SKEW = "node(s) didn't match pod topology spread constraints"
MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"


def _domain_counts(pod: PodInfo, snap: Snapshot, c: SpreadConstraint, eligible: BoolArray) -> IntArray:
    counts = snap.matching_counts(AffinityTerm(c.selector, c.topology_key, frozenset((pod.namespace,))))
    return domain_totals(snap, c.topology_key, counts, among=eligible)


class PodTopologySpread:
    name = "PodTopologySpread"

    def relevant(self, pod: PodInfo) -> bool:
        return any(c.hard for c in pod.spread)

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult:
        hard = [c for c in pod.spread if c.hard]
        eligible = required_mask(pod, snap, state).copy()
        missing = np.zeros(snap.cap, bool)
        for c in hard:
            keyed = has_key(snap, c.topology_key)
            missing |= ~keyed
            eligible &= keyed
        skewed = np.zeros(snap.cap, bool)
        for c in hard:
            totals = _domain_counts(pod, snap, c, eligible)
            codes = snap.codes(c.topology_key)
            domains = np.unique(codes[eligible])
            if domains.size == 0:
                continue
            present = np.zeros(int(codes.max()) + 1, bool)
            present[domains] = True
            per_domain = np.zeros(int(codes.max()) + 1, np.int64)
            per_domain[codes[eligible]] = totals[eligible]
            low = int(per_domain[present].min()) if domains.size >= c.min_domains else 0
            self_match = 1 if c.selector.matches(pod.labels) else 0
            skewed |= (totals + self_match - low > c.max_skew) & ~missing
        return FilterResult(~missing & ~skewed, reasons=[(missing, MISSING), (skewed & ~missing, SKEW)])


class TopologySpreadPreference:
    """Score: fewer matching pods in the node's domains (ScheduleAnyway constraints)."""

    name = "TopologySpreadPreference"

    def relevant(self, pod: PodInfo) -> bool:
        return any(not c.hard for c in pod.spread)

    def score(self, pod: PodInfo, snap: Snapshot, feasible: BoolArray, state: CycleState) -> FloatArray:
        eligible = required_mask(pod, snap, state)
        out = np.zeros(snap.cap)
        for c in pod.spread:
            if not c.hard:
                out -= _domain_counts(pod, snap, c, eligible & has_key(snap, c.topology_key))
        return out
