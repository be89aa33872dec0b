"""Filter and Score plugin protocols, and running them for one pod.

Kubernetes' framework calls ``Filter(pod, nodeInfo)`` once per node; here a plugin answers
for every node at once with a boolean array over the snapshot's node slots (the per-node
call of ARCHITECTURE.md, vectorised), because a Python call per node per pod is what would
make 5,000 nodes slow. Filters run in order and a node is charged to the first filter that
rejects it, so the failure message counts each node once per reason as Kubernetes does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import BoolArray, Snapshot

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class FilterResult:
    """Which nodes pass; why the others do not.

    ``reason`` applies to every rejected node; a plugin with several reasons (resources) gives
    ``reasons``: per reason, the nodes it applies to (a node may have several), or ``explain``,
    which computes them only if the pod fits nowhere and the message is wanted (a pod that
    fits somewhere never needs them, and that is nearly every pod).
    """

    ok: BoolArray
    reason: str = ""
    reasons: list[tuple[BoolArray, str]] = field(default_factory=list)
    explain: Callable[[], list[tuple[BoolArray, str]]] | None = None
    # Set when the pod fits no node for a reason of its own, not of any node (Kubernetes'
    # PreFilter rejection, e.g. a missing claim): the message names that reason alone.
    whole_pod: str = ""

    def why(self) -> list[tuple[BoolArray, str]]:
        return self.explain() if self.explain is not None else self.reasons


@dataclass(slots=True)
class CycleState:
    """Per-attempt scratch space that plugins share (e.g. the eligible-node mask)."""

    data: dict[str, Any] = field(default_factory=dict)


class Filter(Protocol):
    name: str

    def relevant(self, pod: PodInfo) -> bool:
        """False when this plugin cannot reject any node for ``pod`` (skipped: the fast path)."""

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult | None:
        """None: no node is rejected (cheaper than an all-true array)."""


class Score(Protocol):
    name: str

    def relevant(self, pod: PodInfo) -> bool: ...

    def score(self, pod: PodInfo, snap: Snapshot, feasible: BoolArray, state: CycleState) -> FloatArray:
        """Higher is better; only entries of ``feasible`` nodes are looked at."""


@dataclass(slots=True)
class Diagnosis:
    """Which filter rejected which nodes; the per-reason counts are worked out on first use,
    since only a pod that fits nowhere has its reasons counted (for the event text)."""

    num_nodes: int
    rejected_by: dict[str, BoolArray] = field(default_factory=dict)
    steps: list[tuple[str, FilterResult, BoolArray]] = field(default_factory=list)
    pre_filter_msg: str = ""
    _counts: Counter[str] | None = None

    @property
    def counts(self) -> Counter[str]:
        if self._counts is None:
            counts: Counter[str] = Counter()
            for name, res, rejected in self.steps:
                reasons = res.why()
                if reasons:
                    for mask, why in reasons:
                        n = int(np.count_nonzero(mask & rejected))
                        if n:
                            counts[why] += n
                else:
                    counts[res.reason or f"node(s) didn't pass {name}"] += int(np.count_nonzero(rejected))
            self._counts = counts
        return self._counts

    def message(self) -> str:
        """Kubernetes' FitError text: reasons sorted as strings, each with its node count."""
        if self.pre_filter_msg:
            return f"0/{self.num_nodes} nodes are available: {self.pre_filter_msg}."
        parts = sorted(f"{n} {reason}" for reason, n in self.counts.items())
        msg = f"0/{self.num_nodes} nodes are available"
        return msg + (": " + ", ".join(parts) + "." if parts else ".")


def run_filters(pod: PodInfo, snap: Snapshot, filters: list[Filter], state: CycleState
                ) -> tuple[BoolArray, Diagnosis]:
    remaining: BoolArray = snap.valid.copy()
    diag = Diagnosis(snap.num_nodes)
    for f in filters:
        if not f.relevant(pod):
            continue
        res = f.filter(pod, snap, state)
        if res is None:
            continue
        if res.whole_pod:
            # As a PreFilter failure in Kubernetes: no node is charged, nothing is preempted.
            diag.rejected_by.clear()
            diag.steps.clear()
            diag.pre_filter_msg = res.whole_pod
            remaining[:] = False
            break
        rejected = remaining & ~res.ok
        if rejected.any():
            diag.rejected_by[f.name] = rejected
            diag.steps.append((f.name, res, rejected))
            remaining &= res.ok
            if not remaining.any():
                # Kubernetes still charges each node to its first failing plugin; the later
                # plugins have no node left to judge.
                break
    return remaining, diag


def normalize(raw: FloatArray, feasible: BoolArray) -> FloatArray:
    """Scale to [0, 1] by the largest magnitude among feasible nodes (0 when all are 0)."""
    vals = raw[feasible]
    top = float(np.abs(vals).max()) if vals.size else 0.0
    if top == 0.0:
        return np.zeros_like(raw)
    return raw / top
