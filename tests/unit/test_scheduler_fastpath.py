"""The scheduler's per-pod shortcuts give the answers of the long way: the spread ranking
without float scores, the fit test on the incrementally kept free-room table, lazily counted
failure reasons, and recognising an unchanged pod without parsing it again."""

from __future__ import annotations

from typing import Any

import numpy as np

from bosun.scheduler import strategies
from bosun.scheduler.framework import CycleState, normalize, run_filters
from bosun.scheduler.plugins import default_filters
from bosun.scheduler.podinfo import parse_pod
from bosun.scheduler.snapshot import Snapshot

Obj = dict[str, Any]


def node(name: str, cpu: str = "4", pods: int = 110) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": str(pods)}}}


def raw_pod(name: str, cpu: str = "100m", owner: str = "", **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": "d", "uid": f"u-{name}", "labels": {"app": "x"}}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet", "name": owner}]
    return {"metadata": meta,
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}], **spec}}


def slow_pick(snap: Snapshot, info: Any, feasible: Any) -> int:
    """Spread the long way: float scores, best score, first slot among ties."""
    strategy = strategies.get("spread")
    plugin = strategy.scores[0][0]
    total = plugin.score(info, snap, feasible, CycleState())
    candidates = np.flatnonzero(feasible)
    vals = total[candidates]
    return int(candidates[vals >= vals.max() - 1e-9][0])


def test_spread_shortcut_ranks_like_the_scores_while_nodes_fill_and_free() -> None:
    snap = Snapshot(capacity=2)
    for i in range(7):
        snap.set_node(node(f"n{i}", cpu="1", pods=5))
    rng = np.random.default_rng(1)
    filters = default_filters(snap)
    placed: list[str] = []
    for i in range(40):
        owner = ("rs-a", "rs-b", "")[i % 3]
        info = parse_pod(raw_pod(f"p{i}", cpu=("100m", "300m")[i % 2], owner=owner))
        feasible, diag = run_filters(info, snap, filters, CycleState())
        if not feasible.any():
            assert "Insufficient cpu" in diag.message() or "Too many pods" in diag.message()
            continue
        fast = strategies.pick(strategies.get("spread"), info, snap, feasible, CycleState(), rng)
        assert fast == slow_pick(snap, info, feasible)
        snap.add_pod(info, snap.names[fast], assumed=True)
        placed.append(info.key)
        if i % 5 == 4:  # some pods go away again
            snap.remove_pod(placed.pop(0))


def test_fit_uses_free_room_kept_through_node_updates_and_removal() -> None:
    snap = Snapshot(capacity=2)
    snap.set_node(node("a", cpu="1"))
    snap.set_node(node("b", cpu="1"))
    big = parse_pod(raw_pod("big", cpu="800m"))
    snap.add_pod(big, "a")
    feasible, _ = run_filters(parse_pod(raw_pod("p", cpu="500m")), snap, default_filters(snap), CycleState())
    assert [snap.names[i] for i in np.flatnonzero(feasible)] == ["b"]
    snap.set_node(node("a", cpu="2"))  # allocatable grew
    feasible, _ = run_filters(parse_pod(raw_pod("p", cpu="500m")), snap, default_filters(snap), CycleState())
    assert sorted(snap.names[i] for i in np.flatnonzero(feasible)) == ["a", "b"]
    snap.remove_node("b")
    snap.set_node(node("c", cpu="1"))  # reuses b's slot: must start empty
    feasible, diag = run_filters(parse_pod(raw_pod("q", cpu="1500m")), snap, default_filters(snap), CycleState())
    assert not feasible.any()
    assert diag.message() == "0/2 nodes are available: 2 Insufficient cpu."


def test_a_binding_or_status_write_is_recognised_without_reparsing() -> None:
    pending = raw_pod("p")
    info = parse_pod(pending)
    bound = {**pending, "spec": {**pending["spec"], "nodeName": "n1"}, "status": {"phase": "Running"}}
    assert info.parsed_from(bound)
    relabelled = {**bound, "metadata": {**bound["metadata"], "labels": {"app": "y"}}}
    assert not info.parsed_from(relabelled)
    resized = raw_pod("p", cpu="200m")
    assert not info.parsed_from(resized)
    adopted = raw_pod("p", owner="rs-1")
    assert not info.parsed_from(adopted)


def test_normalize_is_unchanged_for_all_zero_scores() -> None:
    feasible = np.array([True, False, True])
    assert not normalize(np.zeros(3), feasible).any()
