"""Grouping nodes into topology domains (the values of one node label), as arrays."""

from __future__ import annotations

import numpy as np

from bosun.scheduler.snapshot import BoolArray, IntArray, Snapshot


def has_key(snap: Snapshot, key: str) -> BoolArray:
    codes = snap.codes(key)
    return (codes >= 0) & snap.valid


def domain_totals(snap: Snapshot, key: str, per_node: IntArray, among: BoolArray | None = None) -> IntArray:
    """For each node, the sum of ``per_node`` over every node of its domain (0 without the key).

    ``among`` limits which nodes contribute (e.g. only nodes eligible for the pod)."""
    codes = snap.codes(key)
    contrib = (codes >= 0) & snap.valid
    if among is not None:
        contrib &= among
    if not contrib.any():
        return np.zeros(snap.cap, np.int64)
    sums = np.bincount(codes[contrib], weights=per_node[contrib], minlength=int(codes.max()) + 1)
    out = np.where(codes >= 0, sums[np.maximum(codes, 0)], 0).astype(np.int64)
    return out


def in_domains_with(snap: Snapshot, key: str, per_node: IntArray) -> BoolArray:
    """Nodes that share a domain of ``key`` with some node where ``per_node`` > 0."""
    if key == "kubernetes.io/hostname" and snap.label_nodes.get(key) is None:
        return (per_node > 0) & snap.valid
    return domain_totals(snap, key, per_node) > 0
