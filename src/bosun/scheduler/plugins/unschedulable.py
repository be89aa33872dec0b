"""Cordoned nodes (spec.unschedulable) take no new pods unless the pod tolerates the taint."""

from __future__ import annotations

from bosun.scheduler.framework import CycleState, FilterResult
from bosun.scheduler.plugins.taints import tolerates
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import Snapshot

UNSCHEDULABLE_TAINT = ("node.kubernetes.io/unschedulable", "", "NoSchedule")


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def relevant(self, pod: PodInfo) -> bool:
        return not tolerates(pod.tolerations, UNSCHEDULABLE_TAINT)

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult | None:
        if not snap.unschedulable.any():
            return None
        return FilterResult(~snap.unschedulable, "node(s) were unschedulable")
