"""Preemption: a pod that fits nowhere may evict lower-priority pods from one node.

As Kubernetes' DefaultPreemption: only nodes that failed for lack of resources are
candidates; on each, every lower-priority pod is a potential victim, then the
highest-priority ones are spared again while the pod still fits. The node whose victims
have the lowest top priority (then the fewest victims) wins; the choice is checked with the
full filter chain on a snapshot with the victims removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bosun.scheduler.framework import CycleState, Diagnosis, Filter, run_filters
from bosun.scheduler.podinfo import PodInfo
from bosun.scheduler.snapshot import CPU, MEM, PODS, STORAGE, Snapshot

MAX_CANDIDATES = 100


@dataclass
class Plan:
    node: str
    victims: list[PodInfo]


def _need(pod: PodInfo) -> dict[str, int]:
    need = {"cpu": pod.cpu, "memory": pod.memory, "ephemeral-storage": pod.storage, "pods": 1}
    need.update(pod.scalars)
    return need


def _free(snap: Snapshot, idx: int) -> dict[str, int]:
    free = {"cpu": int(snap.alloc[idx, CPU] - snap.req[idx, CPU]),
            "memory": int(snap.alloc[idx, MEM] - snap.req[idx, MEM]),
            "ephemeral-storage": int(snap.alloc[idx, STORAGE] - snap.req[idx, STORAGE]),
            "pods": int(snap.alloc[idx, PODS] - snap.req[idx, PODS])}
    for name, arr in snap.scalar_alloc.items():
        req = snap.scalar_req.get(name)
        free[name] = int(arr[idx] - (req[idx] if req is not None else 0))
    return free


def _usage(p: PodInfo) -> dict[str, int]:
    u = {"cpu": p.cpu, "memory": p.memory, "ephemeral-storage": p.storage, "pods": 1}
    u.update(p.scalars)
    return u


def _fits(need: dict[str, int], free: dict[str, int]) -> bool:
    return all((amount <= 0 and k != "pods") or free.get(k, 0) >= amount for k, amount in need.items())


def victims_on(pod: PodInfo, snap: Snapshot, idx: int) -> list[PodInfo] | None:
    lower = [p for p in snap.pods_on[idx].values() if p.priority < pod.priority and p.key not in snap.assumed]
    if not lower:
        return None
    need = _need(pod)
    free = _free(snap, idx)
    for p in lower:
        for k, v in _usage(p).items():
            free[k] = free.get(k, 0) + v
    if not _fits(need, free):
        return None
    victims: list[PodInfo] = []
    for p in sorted(lower, key=lambda p: -p.priority):  # spare the most important first
        trial = dict(free)
        for k, v in _usage(p).items():
            trial[k] = trial.get(k, 0) - v
        if _fits(need, trial):
            free = trial
        else:
            victims.append(p)
    return victims


def plan(pod: PodInfo, snap: Snapshot, diag: Diagnosis, filters: list[Filter]) -> Plan | None:
    if not pod.preempt:
        return None
    resource_bound = diag.rejected_by.get("NodeResourcesFit")
    if resource_bound is None:
        return None
    best: tuple[int, int, int, list[PodInfo]] | None = None
    for idx in np.flatnonzero(resource_bound)[:MAX_CANDIDATES]:
        vs = victims_on(pod, snap, int(idx))
        if not vs:
            continue
        rank = (max(v.priority for v in vs), len(vs), int(idx))
        if best is None or rank < best[:3]:
            best = (*rank, vs)
    if best is None:
        return None
    idx, victims = best[2], best[3]
    node = snap.names[idx]
    removed = [(v, snap.node_of(v.key) or node) for v in victims]
    for v, _ in removed:
        snap.remove_pod(v.key)
    try:
        feasible, _ = run_filters(pod, snap, filters, CycleState())
        ok = bool(feasible[idx])
    finally:
        for v, where in removed:
            snap.add_pod(v, where)
    return Plan(node, victims) if ok else None
