"""Taints and tolerations: NoSchedule/NoExecute taints keep untolerating pods off a node;
PreferNoSchedule taints only lower its score.

Nodes are grouped by their exact taint list (most clusters have a handful of distinct
lists), so each list is judged once per pod, not once per node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from bosun.scheduler.framework import CycleState, FilterResult, FloatArray
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import BoolArray, Snapshot, Taint

HARD = ("NoSchedule", "NoExecute")


def toleration_matches(t: dict[str, Any], taint: Taint) -> bool:
    key, value, effect = taint
    if t.get("effect") and t.get("effect") != effect:
        return False
    if t.get("key") and t.get("key") != key:
        return False
    op = t.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (t.get("value") or "") == value


def tolerates(tolerations: Iterable[dict[str, Any]], taint: Taint) -> bool:
    return any(toleration_matches(t, taint) for t in tolerations)


class TaintToleration:
    name = "TaintToleration"

    def relevant(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult | None:
        if not snap.taint_groups:
            return None
        ok: BoolArray = np.ones(snap.cap, bool)
        reasons: list[tuple[BoolArray, str]] = []
        for taints in list(snap.taint_groups):
            bad = next((t for t in taints if t[2] in HARD and not tolerates(pod.tolerations, t)), None)
            if bad is None:
                continue
            idx = snap.taint_indices(taints)
            ok[idx] = False
            mask = np.zeros(snap.cap, bool)
            mask[idx] = True
            reasons.append((mask, f"node(s) had untolerated taint {{{bad[0]}: {bad[1]}}}"))
        return FilterResult(ok, reasons=reasons)


class TaintPreference:
    """Score: fewer untolerated PreferNoSchedule taints is better."""

    name = "TaintPreference"

    def relevant(self, pod: PodInfo) -> bool:
        return True

    def score(self, pod: PodInfo, snap: Snapshot, feasible: BoolArray, state: CycleState) -> FloatArray:
        out = np.zeros(snap.cap)
        for taints in list(snap.taint_groups):
            n = sum(1 for t in taints if t[2] == "PreferNoSchedule" and not tolerates(pod.tolerations, t))
            if n:
                out[snap.taint_indices(taints)] = -n
        return out
