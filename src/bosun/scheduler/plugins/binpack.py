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
        out = np.zeros(snap.cap)
        for col, amount in ((CPU, pod.cpu), (MEM, pod.memory), (PODS, 1)):
            out += np.minimum((snap.req[:, col] + amount) / np.maximum(snap.alloc[:, col], 1), 1.0)
        return out / 3.0
