"""nodeSelector and node affinity (required: a filter; preferred: a score).

Each requirement becomes a boolean mask from the snapshot's label index (cached per label
key), so a selector costs a few array ORs/ANDs whatever the number of nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bosun.scheduler.framework import CycleState, FilterResult, FloatArray
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import BoolArray, Snapshot

REASON = "node(s) didn't match Pod's node affinity/selector"


def _values_mask(snap: Snapshot, key: str, values: list[str]) -> BoolArray:
    if len(values) == 1:
        return snap.label_mask(key, values[0])
    m = np.zeros(snap.cap, bool)
    for v in values:
        m |= snap.label_mask(key, v)
    return m


def _compare_mask(snap: Snapshot, key: str, op: str, values: list[str]) -> BoolArray:
    m = np.zeros(snap.cap, bool)
    if len(values) != 1:
        return m
    try:
        want = int(values[0])
    except ValueError:
        return m
    for value, idxs in snap.label_nodes.get(key, {}).items():
        try:
            have = int(value)
        except ValueError:
            continue
        if (have > want) if op == "Gt" else (have < want):
            m[list(idxs)] = True
    return m


def requirement_mask(snap: Snapshot, req: dict[str, Any], *, field: bool = False) -> BoolArray:
    key = str(req.get("key") or "")
    op = req.get("operator")
    values = [str(v) for v in req.get("values") or []]
    if field:
        m = np.zeros(snap.cap, bool)
        if key != "metadata.name" or op not in ("In", "NotIn"):
            return m
        for v in values:
            idx = snap.index.get(v)
            if idx is not None:
                m[idx] = True
        return m if op == "In" else ~m
    if op == "In":
        return _values_mask(snap, key, values)
    if op == "NotIn":
        return ~_values_mask(snap, key, values)
    if op == "Exists":
        return snap.label_mask(key)
    if op == "DoesNotExist":
        return ~snap.label_mask(key)
    if op in ("Gt", "Lt"):
        return _compare_mask(snap, key, op, values)
    return np.zeros(snap.cap, bool)


def term_mask(snap: Snapshot, term: dict[str, Any]) -> BoolArray:
    """A NodeSelectorTerm: all its requirements; an empty term matches no node."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return np.zeros(snap.cap, bool)
    m = np.ones(snap.cap, bool)
    for r in exprs:
        m &= requirement_mask(snap, r)
    for r in fields:
        m &= requirement_mask(snap, r, field=True)
    return m


def required_mask(pod: PodInfo, snap: Snapshot, state: CycleState | None = None) -> BoolArray:
    """Nodes matching the pod's nodeSelector and required node affinity (cached per attempt)."""
    if state is not None and "node-affinity" in state.data:
        cached: BoolArray = state.data["node-affinity"]
        return cached
    m = snap.valid.copy()
    for k, v in pod.node_selector.items():
        m &= snap.label_mask(k, v)
    if pod.required_node_terms:
        anyof = np.zeros(snap.cap, bool)
        for term in pod.required_node_terms:
            anyof |= term_mask(snap, term)
        m &= anyof
    if state is not None:
        state.data["node-affinity"] = m
    return m


class NodeAffinity:
    name = "NodeAffinity"

    def relevant(self, pod: PodInfo) -> bool:
        return bool(pod.node_selector or pod.required_node_terms)

    def filter(self, pod: PodInfo, snap: Snapshot, state: CycleState) -> FilterResult:
        return FilterResult(required_mask(pod, snap, state), REASON)


class NodeAffinityPreference:
    """Score: the summed weight of the preferred terms a node matches."""

    name = "NodeAffinityPreference"

    def relevant(self, pod: PodInfo) -> bool:
        return bool(pod.preferred_node_terms)

    def score(self, pod: PodInfo, snap: Snapshot, feasible: BoolArray, state: CycleState) -> FloatArray:
        out = np.zeros(snap.cap)
        for weight, term in pod.preferred_node_terms:
            out += weight * term_mask(snap, term)
        return out
