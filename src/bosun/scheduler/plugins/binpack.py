"""Binpack: the most allocated node that still fits, so nodes fill one after another and
large pods find whole free nodes later (less fragmentation)."""

from __future__ import annotations

import numpy as np

from bosun.scheduler.framework import CycleState, FloatArray
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import CPU, MEM, PODS, BoolArray, Snapshot


class Binpack:
    name = "Binpack"

    def relevant(self, pod: PodInfo) -> bool:
        return True

    def score(self, pod: PodInfo, snap: Snapshot, feasible: BoolArray, state: CycleState) -> FloatArray:
        """Mean fraction of cpu, memory and pod slots in use once the pod is placed."""
        alloc = np.maximum(snap.alloc[:, [CPU, MEM, PODS]], 1).astype(np.float64)
        used = snap.req[:, [CPU, MEM, PODS]] + np.array([pod.cpu, pod.memory, 1])
        frac = np.minimum(used / alloc, 1.0)
        return np.asarray(frac.mean(axis=1), np.float64)
