"""Scheduler plugins on a snapshot built from plain objects: each filter's verdict and
reason string, the failure message's form, constraint parsing, the snapshot's incremental
bookkeeping, preemption's victim choice and the queue's back-off and wake-ups."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from bosun.scheduler import preemption, strategies
from bosun.scheduler.framework import CycleState, run_filters
from bosun.scheduler.plugins import default_filters
from bosun.scheduler.plugins.constraints import parse_constraints
from bosun.scheduler.podinfo import PodInfo, PodSpecError, parse_pod
from bosun.scheduler.queue import SchedulingQueue
from bosun.scheduler.snapshot import CPU, PODS, Snapshot

Obj = dict[str, Any]


def node(name: str, *, cpu: str = "4", pods: int = 110, labels: dict[str, str] | None = None,
         taints: list[Obj] | None = None, unschedulable: bool = False) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": str(pods)}}}


def pod(name: str, *, cpu: str = "", labels: dict[str, str] | None = None, ns: str = "d", **spec: Any) -> PodInfo:
    res = {"requests": {"cpu": cpu}} if cpu else {}
    annotations = spec.pop("annotations", {})
    return parse_pod({"metadata": {"name": name, "namespace": ns, "uid": name, "labels": labels or {},
                                   "annotations": annotations},
                      "spec": {"containers": [{"name": "c", "resources": res}], **spec}})


def snapshot(*nodes: Obj) -> Snapshot:
    snap = Snapshot(capacity=2)  # tiny on purpose: exercises growth
    for n in nodes:
        snap.set_node(n)
    return snap


def verdict(snap: Snapshot, p: PodInfo) -> tuple[set[str], str]:
    feasible, diag = run_filters(p, snap, default_filters(snap), CycleState())
    return {snap.names[i] for i in np.flatnonzero(feasible)}, diag.message()


def test_failure_message_counts_each_node_once_in_kubernetes_words() -> None:
    snap = snapshot(*(node(f"a{i}", cpu="1", labels={"disk": "ssd"}) for i in range(3)),
                    *(node(f"b{i}", labels={"disk": "hdd"}) for i in range(2)))
    ok, msg = verdict(snap, pod("p", cpu="2", nodeSelector={"disk": "ssd"}))
    assert not ok
    assert msg == "0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 3 Insufficient cpu."


def test_taints_unschedulable_and_too_many_pods() -> None:
    snap = snapshot(node("t", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
                    node("soft", taints=[{"key": "x", "effect": "PreferNoSchedule"}]),
                    node("c", unschedulable=True), node("full", pods=0))
    ok, msg = verdict(snap, pod("p"))
    assert ok == {"soft"}
    tolerating = pod("q", tolerations=[{"key": "gpu", "operator": "Exists"}])
    assert verdict(snap, tolerating)[0] == {"soft", "t"}
    snap.set_node(node("soft", taints=[{"key": "x", "value": "", "effect": "NoExecute"}]))
    _, msg = verdict(snap, pod("p"))
    assert msg == ("0/4 nodes are available: 1 Too many pods, 1 node(s) had untolerated taint {gpu: yes}, "
                   "1 node(s) had untolerated taint {x: }, 1 node(s) were unschedulable.")


def test_node_affinity_operators() -> None:
    snap = snapshot(node("n1", labels={"rank": "1", "zone": "a"}), node("n5", labels={"rank": "5", "zone": "b"}),
                    node("nx", labels={"zone": "c"}))

    def req(*exprs: Obj) -> PodInfo:
        return pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": list(exprs)}]}}})

    assert verdict(snap, req({"key": "rank", "operator": "Gt", "values": ["2"]}))[0] == {"n5"}
    assert verdict(snap, req({"key": "rank", "operator": "Lt", "values": ["2"]}))[0] == {"n1"}
    assert verdict(snap, req({"key": "rank", "operator": "DoesNotExist"}))[0] == {"nx"}
    assert verdict(snap, req({"key": "zone", "operator": "NotIn", "values": ["a", "b"]}))[0] == {"nx"}
    assert verdict(snap, req({"key": "zone", "operator": "In", "values": ["a", "c"]},
                             {"key": "rank", "operator": "Exists"}))[0] == {"n1"}


def test_constraints_parse_and_filter() -> None:
    snap = snapshot(node("m", labels={"node-role.kubernetes.io/control-plane": "", "storage": "ssd"}),
                    node("w1", labels={"storage": "ssd"}), node("w2", labels={"storage": "hdd"}))
    c = {"bosun.io/constraints": "node.labels.storage==ssd,node.role!=manager"}
    assert verdict(snap, pod("p", annotations=c))[0] == {"w1"}
    assert verdict(snap, pod("p", annotations={"bosun.io/constraints": "node.role==manager"}))[0] == {"m"}
    for bad in ("node.labels.x=~y", "node.labels.x", "color==red", "node.labels.==x", "node.id=="):
        with pytest.raises(PodSpecError):
            parse_constraints(bad)


def test_pod_anti_affinity_is_symmetric_and_affinity_lets_the_first_pod_in() -> None:
    snap = snapshot(*(node(f"n{i}", labels={"zone": f"z{i % 2}"}) for i in range(4)))
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}
    snap.add_pod(pod("db0", labels={"app": "db"}, affinity=anti), "n0")
    # A plain pod labelled app=db is kept out of z0 by the existing pod's anti-affinity.
    ok, msg = verdict(snap, pod("db1", labels={"app": "db"}))
    assert ok == {"n1", "n3"}
    assert "2 node(s) didn't satisfy existing pods anti-affinity rules" in msg
    together = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}]}}
    assert verdict(snap, pod("c0", labels={"app": "cache"}, affinity=together))[0] == {"n0", "n1", "n2", "n3"}
    snap.add_pod(pod("c0", labels={"app": "cache"}), "n3")
    assert verdict(snap, pod("c1", labels={"app": "cache"}, affinity=together))[0] == {"n1", "n3"}
    snap.remove_pod("d/db0")
    assert verdict(snap, pod("db1", labels={"app": "db"}))[0] == {"n0", "n1", "n2", "n3"}
    with pytest.raises(PodSpecError):
        pod("bad", affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {}, "topologyKey": ""}]}})


def test_topology_spread_max_skew() -> None:
    snap = snapshot(*(node(f"n{i}", labels={"zone": f"z{i % 3}"}) for i in range(3)), node("nokey"))
    tsc = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "w"}}}]
    snap.add_pod(pod("w0", labels={"app": "w"}), "n0")
    ok, _ = verdict(snap, pod("w1", labels={"app": "w"}, topologySpreadConstraints=tsc))
    assert ok == {"n1", "n2"}
    _, diag = run_filters(pod("w1", labels={"app": "w"}, topologySpreadConstraints=tsc), snap,
                          default_filters(snap), CycleState())
    assert diag.counts == {"node(s) didn't match pod topology spread constraints": 1,
                           "node(s) didn't match pod topology spread constraints (missing required label)": 1}


def test_snapshot_accounting_is_incremental_and_survives_node_churn() -> None:
    snap = snapshot(node("a", cpu="1"))
    p = pod("p", cpu="600m")
    snap.add_pod(p, "a", assumed=True)
    assert snap.req[snap.index["a"], CPU] == 600 and "d/p" in snap.assumed
    snap.add_pod(p, "a")  # the informer confirms the binding
    assert "d/p" not in snap.assumed and snap.req[snap.index["a"], PODS] == 1
    snap.remove_node("a")
    assert snap.num_nodes == 0
    snap.set_node(node("a", cpu="1"))  # comes back: its pods are counted again
    assert snap.req[snap.index["a"], CPU] == 600
    assert verdict(snap, pod("q", cpu="600m"))[1] == "0/1 nodes are available: 1 Insufficient cpu."
    snap.remove_pod("d/p")
    assert snap.req[snap.index["a"]].tolist() == [0, 0, 0, 0]


def test_strategies_pick() -> None:
    snap = snapshot(node("a"), node("b"), node("c"))
    snap.add_pod(pod("x", cpu="1"), "b")
    feasible = snap.valid.copy()
    rng = np.random.default_rng(1)
    p = pod("p", cpu="100m")
    assert snap.names[strategies.pick(strategies.get("binpack"), p, snap, feasible, CycleState(), rng)] == "b"
    assert snap.names[strategies.pick(strategies.get("spread"), p, snap, feasible, CycleState(), rng)] == "a"
    picks = {snap.names[strategies.pick(strategies.get("random"), p, snap, feasible, CycleState(), rng)]
             for _ in range(50)}
    assert picks == {"a", "b", "c"}
    with pytest.raises(KeyError):
        strategies.get("fastest")


def test_preemption_picks_the_cheapest_victims() -> None:
    snap = snapshot(node("a", cpu="1"), node("b", cpu="1"))
    for name, where, prio in (("a1", "a", 10), ("a2", "a", 10), ("b1", "b", 1), ("b2", "b", 500)):
        info = pod(name, cpu="500m")
        info.priority = prio
        snap.add_pod(info, where)
    vip = pod("vip", cpu="500m")
    vip.priority = 100
    filters = default_filters(snap)
    feasible, diag = run_filters(vip, snap, filters, CycleState())
    assert not feasible.any()
    plan = preemption.plan(vip, snap, diag, filters)
    assert plan is not None and plan.node == "b" and [v.name for v in plan.victims] == ["b1"]
    assert snap.req[snap.index["b"], PODS] == 2  # the trial removal was undone
    vip.preempt = False
    assert preemption.plan(vip, snap, diag, filters) is None


async def test_queue_parks_unschedulable_pods_until_a_change() -> None:
    q = SchedulingQueue(initial_backoff=0.05, max_backoff=0.1, flush_after=30)
    q.add("lo", 0)
    q.add("hi", 10)
    assert await q.pop_batch(10) == ["hi", "lo"]
    q.unschedulable("hi")
    q.done("lo")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await q.pop_batch(10)  # parked: no busy retry
    q.move_all()  # e.g. a node joined; the back-off (50 ms) still applies
    async with asyncio.timeout(1):
        assert await q.pop_batch(10) == ["hi"]
    q.move_all()  # a change during the attempt sends it to back-off, not to the parked set
    q.unschedulable("hi")
    async with asyncio.timeout(1):
        assert await q.pop_batch(10) == ["hi"]
    q.retry("hi")
    q.delete("hi")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await q.pop_batch(10)


async def test_an_idle_queue_takes_pods_backing_off_after_a_change_but_not_after_an_error() -> None:
    """KEP-5142 (kube-scheduler 1.33): with nothing active, a pod that a cluster change made
    worth another try is taken before its back-off ends; one that failed with an error waits."""
    loop = asyncio.get_running_loop()
    q = SchedulingQueue(initial_backoff=1.0, max_backoff=1.0, flush_after=30)
    q.add("a", 0)
    assert await q.pop_batch(10) == ["a"]
    q.unschedulable("a")
    q.add("b", 0)
    assert await q.pop_batch(10) == ["b"]
    q.move_all()  # a's place freed: a backs off for 1 s ...
    assert q.counts()["backoff"] == 1
    t0 = loop.time()
    q.retry("b")  # ... b's binding failed: b backs off for 1 s too
    async with asyncio.timeout(0.5):
        assert await q.pop_batch(10) == ["a"]  # taken at once: nothing else was active
    assert loop.time() - t0 < 0.5
    q.done("a")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await q.pop_batch(10)  # b waits its back-off out
    async with asyncio.timeout(2):
        assert await q.pop_batch(10) == ["b"]
    # An active pod goes first; a backing-off one is taken only when none is left.
    q.unschedulable("b")
    q.move_all()
    q.add("c", 0)
    assert await q.pop_batch(1) == ["c"]
    assert q.counts()["backoff"] == 1
    assert await q.pop_batch(1) == ["b"]
