"""Strategies are weight sets over score plugins (plus how ties are broken).

Every strategy also honours the pod's soft preferences (preferred node/pod affinity,
PreferNoSchedule taints, ScheduleAnyway spread); they are scaled to [0, 1] and weighted so a
stated preference outweighs the strategy's own small differences, as in Kubernetes where
the preference plugins carry the larger weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bosun.scheduler.framework import CycleState, Score, normalize
from bosun.scheduler.plugins.binpack import Binpack
from bosun.scheduler.plugins.nodeaffinity import NodeAffinityPreference
from bosun.scheduler.plugins.podaffinity import InterPodAffinityPreference
from bosun.scheduler.plugins.spread import Spread
from bosun.scheduler.plugins.taints import TaintPreference
from bosun.scheduler.plugins.topologyspread import TopologySpreadPreference
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import BoolArray, Snapshot

PREFERENCE_WEIGHT = 10.0
NAMES = ("spread", "binpack", "random")


@dataclass(frozen=True)
class Strategy:
    name: str
    scores: tuple[tuple[Score, float], ...]  # raw scores, summed with these weights
    random_ties: bool = False


_TAINT_PREFERENCE = TaintPreference()
PREFERENCES: tuple[Score, ...] = (NodeAffinityPreference(), _TAINT_PREFERENCE, InterPodAffinityPreference(),
                                  TopologySpreadPreference())
STRATEGIES: dict[str, Strategy] = {
    "spread": Strategy("spread", ((Spread(), 1.0),)),
    "binpack": Strategy("binpack", ((Binpack(), 1.0),)),
    "random": Strategy("random", (), random_ties=True),
}


def get(name: str) -> Strategy:
    """The strategy called ``name``; KeyError for an unknown one."""
    return STRATEGIES[name]


def pick(strategy: Strategy, pod: PodInfo, snap: Snapshot, feasible: BoolArray, state: CycleState,
         rng: np.random.Generator) -> int:
    """The slot of the best feasible node (``feasible`` must have at least one)."""
    prefs = [p for p in PREFERENCES
             if p.relevant(pod) and (p is not _TAINT_PREFERENCE or snap.has_soft_taints())]
    if not prefs and len(strategy.scores) == 1 and not strategy.random_ties:
        best = getattr(strategy.scores[0][0], "best", None)
        if best is not None:  # one score and nothing else: rank without building scores
            return int(best(pod, snap, feasible))
    candidates = np.flatnonzero(feasible)
    if candidates.size == 1:
        return int(candidates[0])
    total: np.ndarray | None = None
    for plugin, weight in strategy.scores:
        s = weight * plugin.score(pod, snap, feasible, state)
        total = s if total is None else total + s
    for pref in prefs:
        s = PREFERENCE_WEIGHT * normalize(pref.score(pod, snap, feasible, state), feasible)
        total = s if total is None else total + s
    if total is not None:
        vals = total[candidates]
        best = vals.max()
        candidates = candidates[vals >= best - 1e-9]
    if strategy.random_ties and candidates.size > 1:
        return int(candidates[rng.integers(candidates.size)])
    return int(candidates[0])
