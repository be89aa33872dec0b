"""Spread (Swarm's default): the node with the fewest pods of the pod's workload, then the
fewest pods overall. The pod count is scaled below 1 so that it only breaks ties between
nodes with equal workload counts."""

from __future__ import annotations

import numpy as np

from bosun.scheduler.framework import CycleState, FloatArray
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import PODS, BoolArray, Snapshot


class Spread:
    name = "Spread"

    def relevant(self, pod: PodInfo) -> bool:
        return True

    def score(self, pod: PodInfo, snap: Snapshot, feasible: BoolArray, state: CycleState) -> FloatArray:
        pods = snap.req[:, PODS].astype(np.float64)
        out = -pods / (float(pods.max()) + 1.0)
        counts = snap.owner_counts.get(pod.owner_uid) if pod.owner_uid else None
        if counts is not None:
            out -= counts
        return out

    def best(self, pod: PodInfo, snap: Snapshot, feasible: BoolArray) -> int:
        """The slot ``score`` ranks first, without floating point: the fewest workload pods,
        then the fewest pods, then the lowest slot (the hot path when nothing else scores)."""
        key = snap.npods.copy()
        counts = snap.owner_counts.get(pod.owner_uid) if pod.owner_uid else None
        if counts is not None:
            key += counts << 32
        key[~feasible] = _NEVER
        return int(key.argmin())


_NEVER = np.iinfo(np.int64).max
