"""Resource requests against allocatable: cpu, memory, ephemeral-storage, pod count and
extended resources, with Kubernetes' reason strings (a node may lack several at once)."""

from __future__ import annotations

import numpy as np

from bosun.scheduler.framework import CycleState, FilterResult
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import CPU, MEM, PODS, STORAGE, BoolArray, Snapshot


def insufficient(pod: PodInfo, snap: Snapshot) -> list[tuple[BoolArray, str]]:
    """Per reason, the nodes that lack room for ``pod``."""
    free = snap.alloc - snap.req
    out: list[tuple[BoolArray, str]] = [(free[:, PODS] < 1, "Too many pods")]
    for col, amount, word in ((CPU, pod.cpu, "cpu"), (MEM, pod.memory, "memory"),
                              (STORAGE, pod.storage, "ephemeral-storage")):
        if amount > 0:
            out.append((free[:, col] < amount, f"Insufficient {word}"))
    for name, amount in pod.scalars.items():
        if amount > 0:
            alloc = snap.scalar_alloc.get(name)
            req = snap.scalar_req.get(name)
            have = (alloc if alloc is not None else np.zeros(snap.cap, np.int64)) - (
                req if req is not None else 0)
            out.append((have < amount, f"Insufficient {name}"))
    return out


class NodeResourcesFit:
    name = "NodeResourcesFit"

    def relevant(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult:
        # One comparison over the (nodes x 4) table answers fit; the per-reason masks are
        # only built when the pod fits nowhere and the event needs them.
        free = snap.room
        ok: BoolArray = free[PODS] >= 1
        for col, amount in ((CPU, pod.cpu), (MEM, pod.memory), (STORAGE, pod.storage)):
            if amount > 0:
                ok &= free[col] >= amount
        for name, amount in pod.scalars.items():
            if amount > 0:
                alloc = snap.scalar_alloc.get(name)
                if alloc is None:
                    ok[:] = False
                    continue
                req = snap.scalar_req.get(name)
                ok &= (alloc - req if req is not None else alloc) >= amount
        return FilterResult(ok, explain=lambda: insufficient(pod, snap))
