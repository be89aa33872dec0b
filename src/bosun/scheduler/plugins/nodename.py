"""A pod that names its node (spec.nodeName) fits only there."""

from __future__ import annotations

import numpy as np

from bosun.scheduler.framework import CycleState, FilterResult
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import Snapshot


class NodeName:
    name = "NodeName"

    def relevant(self, pod: PodInfo) -> bool:
        return bool(pod.node_name)

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult:
        ok = np.zeros(snap.cap, bool)
        idx = snap.index.get(pod.node_name)
        if idx is not None:
            ok[idx] = True
        return FilterResult(ok, "node(s) didn't match the requested node name")
