"""The scheduler against a real control plane (API server + scheduler only): pods land where
each filter, score and strategy says, concurrent creates never break constraints or
anti-affinity, and a pod that fits nowhere says why in Kubernetes' words.

Nodes are plain Node objects created through the API (nothing runs the pods); each test
labels its own nodes and pins its pods to them with a nodeSelector, so tests sharing the
module's server do not see each other's nodes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served, start_server

from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource

PODS = resource("", "v1", "pods")
NODES = resource("", "v1", "nodes")
NAMESPACES = resource("", "v1", "namespaces")
EVENTS = resource("", "v1", "events")
CONFIGMAPS = resource("", "v1", "configmaps")
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    opts = ControlPlaneOptions(controllers=["none"], scheduler=True, scheduling_strategy="spread")
    yield from served(tmp_path_factory.mktemp("sched"), options=opts)


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[Client]:
    c = Client(load_kubeconfig(server.kubeconfig))
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def ns(client: Client) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    yield name


def node_body(name: str, group: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110,
              labels: dict[str, str] | None = None, taints: list[Obj] | None = None,
              unschedulable: bool = False) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    spec: Obj = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "group": group, **(labels or {})}},
            "spec": spec,
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


async def make_nodes(client: Client, group: str, n: int, **kw: Any) -> list[str]:
    names = [f"{group}-n{i}" for i in range(n)]
    await asyncio.gather(*(client.create(NODES, node_body(name, group, **kw)) for name in names))
    return names


def pod_body(name: str, group: str, *, cpu: str = "", memory: str = "", labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None, spec: Obj | None = None, owner: str = "") -> Obj:
    res: Obj = {}
    if cpu:
        res.setdefault("requests", {})["cpu"] = cpu
    if memory:
        res.setdefault("requests", {})["memory"] = memory
    meta: Obj = {"name": name, "labels": labels or {"app": "x"}}
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner,
                                    "controller": True}]
    body: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                 "spec": {"nodeSelector": {"group": group},
                          "containers": [{"name": "c", "image": "busybox", "resources": res}], **(spec or {})}}
    return body


async def create_pods(client: Client, ns: str, bodies: list[Obj]) -> None:
    await asyncio.gather(*(client.create(PODS, b, ns) for b in bodies))


async def placements(client: Client, ns: str, want: int, within: float = 20.0) -> dict[str, str]:
    """pod name -> node, once ``want`` pods are bound."""
    deadline = time.monotonic() + within
    while True:
        items = (await client.list(PODS, ns))["items"]
        bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in items if p["spec"].get("nodeName")}
        if len(bound) >= want:
            return bound
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(bound)}/{want} pods bound: {bound}")
        await asyncio.sleep(0.1)


async def events_for(client: Client, ns: str, pod: str, reason: str, within: float = 10.0) -> list[Obj]:
    deadline = time.monotonic() + within
    while True:
        evs = [e for e in (await client.list(EVENTS, ns))["items"]
               if e["involvedObject"]["name"] == pod and e["reason"] == reason]
        if evs or time.monotonic() > deadline:
            return evs
        await asyncio.sleep(0.1)


def group_name() -> str:
    return f"g{uuid.uuid4().hex[:6]}"


# ---- strategies -------------------------------------------------------------------------------

async def test_spread_evens_out_within_one_pod_per_node(client: Client, ns: str) -> None:
    g = group_name()
    nodes = await make_nodes(client, g, 4)
    # Other pods already crowd the first node: spread still evens out the workload first.
    await create_pods(client, ns, [pod_body(f"other{i}", g, spec={"nodeName": nodes[0]}) for i in range(5)])
    cm = await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, ns)  # a real owner: the GC keeps its pods
    owner = cm["metadata"]["uid"]
    await create_pods(client, ns, [pod_body(f"p{i}", g, cpu="100m", owner=owner) for i in range(10)])
    got = {p: n for p, n in (await placements(client, ns, 15)).items() if p.startswith("p")}
    counts = Counter(got.values())
    assert set(counts) == set(nodes)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert counts[nodes[0]] == 2  # ties between workload counts go to the emptier nodes


async def test_binpack_fills_the_first_node_before_the_next(client: Client, ns: str) -> None:
    g = group_name()
    await make_nodes(client, g, 3, cpu="1")
    bodies = [pod_body(f"p{i}", g, cpu="250m", annotations={"bosun.io/scheduling-strategy": "binpack"})
              for i in range(6)]
    for b in bodies:  # one after another: each must join the fullest node that fits
        await client.create(PODS, b, ns)
        await placements(client, ns, int(b["metadata"]["name"][1:]) + 1)
    got = await placements(client, ns, 6)
    counts = sorted(Counter(got.values()).values(), reverse=True)
    assert counts == [4, 2]


async def test_random_uses_every_feasible_node(client: Client, ns: str) -> None:
    g = group_name()
    nodes = await make_nodes(client, g, 3)
    await create_pods(client, ns, [pod_body(f"p{i}", g, annotations={"bosun.io/scheduling-strategy": "random"})
                                   for i in range(30)])
    got = await placements(client, ns, 30)
    assert set(got.values()) == set(nodes)


async def test_unknown_strategy_annotation_leaves_pod_pending_with_event(client: Client, ns: str) -> None:
    g = group_name()
    await make_nodes(client, g, 1)
    await client.create(PODS, pod_body("bad", g, annotations={"bosun.io/scheduling-strategy": "fastest"}), ns)
    evs = await events_for(client, ns, "bad", "FailedScheduling")
    assert evs and evs[0]["type"] == "Warning" and "fastest" in evs[0]["message"]
    pod = await client.get(PODS, "bad", ns)
    assert not pod["spec"].get("nodeName")
    # Fixing the annotation schedules it (the update brings it back from the unschedulable set).
    await client.patch(PODS, "bad", {"metadata": {"annotations": {"bosun.io/scheduling-strategy": "binpack"}}}, ns)
    await placements(client, ns, 1)


# ---- filters ----------------------------------------------------------------------------------

async def test_resources_never_overcommit_a_node(client: Client, ns: str) -> None:
    g = group_name()
    await make_nodes(client, g, 2, cpu="1", memory="1Gi")
    await create_pods(client, ns, [pod_body(f"p{i}", g, cpu="300m") for i in range(8)])
    got = await placements(client, ns, 6)
    await asyncio.sleep(0.3)
    got = await placements(client, ns, 6)
    assert len(got) == 6 and set(Counter(got.values()).values()) == {3}
    pending = [p for p in (await client.list(PODS, ns))["items"] if not p["spec"].get("nodeName")]
    assert len(pending) == 2


async def test_node_affinity_taints_cordon_and_constraints(client: Client, ns: str) -> None:
    g = group_name()
    await client.create(NODES, node_body(f"{g}-ssd", g, labels={"storage": "ssd", "rank": "5"}))
    await client.create(NODES, node_body(f"{g}-hdd", g, labels={"storage": "hdd", "rank": "1"}))
    await client.create(NODES, node_body(f"{g}-tainted", g, labels={"storage": "ssd", "rank": "9"},
                                         taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]))
    await client.create(NODES, node_body(f"{g}-cordoned", g, labels={"storage": "ssd", "rank": "7"},
                                         unschedulable=True))
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "rank", "operator": "Gt", "values": ["2"]}]}]}}}
    tol = [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]
    bodies = [pod_body(f"aff{i}", g, spec={"affinity": affinity}) for i in range(4)]
    bodies += [pod_body(f"tol{i}", g, spec={"tolerations": tol, "nodeSelector": {"group": g, "rank": "9"}})
               for i in range(2)]
    bodies += [pod_body(f"con{i}", g, annotations={"bosun.io/constraints": "node.labels.storage==hdd"})
               for i in range(3)]
    bodies += [pod_body(f"notssd{i}", g, annotations={"bosun.io/constraints": f"node.labels.storage!=ssd,"
                                                                              f"node.hostname=={g}-hdd"})
               for i in range(2)]
    await create_pods(client, ns, bodies)
    got = await placements(client, ns, len(bodies))
    for name, node in got.items():
        if name.startswith("aff"):
            assert node == f"{g}-ssd"  # rank 9 is tainted, rank 7 cordoned
        elif name.startswith("tol"):
            assert node == f"{g}-tainted"
        else:
            assert node == f"{g}-hdd"
    assert f"{g}-cordoned" not in got.values()


async def test_malformed_constraints_event_and_pending(client: Client, ns: str) -> None:
    g = group_name()
    await make_nodes(client, g, 1)
    await client.create(PODS, pod_body("bad", g, annotations={"bosun.io/constraints": "node.labels.x=~y"}), ns)
    evs = await events_for(client, ns, "bad", "FailedScheduling")
    assert evs and evs[0]["type"] == "Warning" and "node.labels.x=~y" in evs[0]["message"]
    assert not (await client.get(PODS, "bad", ns))["spec"].get("nodeName")


async def test_host_ports_one_pod_per_node(client: Client, ns: str) -> None:
    g = group_name()
    await make_nodes(client, g, 2)
    bodies = []
    for i in range(3):
        b = pod_body(f"p{i}", g)
        b["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
        bodies.append(b)
    await create_pods(client, ns, bodies)
    got = await placements(client, ns, 2)
    await asyncio.sleep(0.3)
    got = await placements(client, ns, 2)
    assert len(got) == 2 and len(set(got.values())) == 2
    pending = [p["metadata"]["name"] for p in (await client.list(PODS, ns))["items"] if not p["spec"].get("nodeName")]
    evs = await events_for(client, ns, pending[0], "FailedScheduling")
    assert evs and "2 node(s) didn't have free ports for the requested pod ports" in evs[0]["message"]


async def test_pod_affinity_follows_and_topology_spread_balances_zones(client: Client, ns: str) -> None:
    g = group_name()
    for i in range(6):
        await client.create(NODES, node_body(f"{g}-n{i}", g, labels={"zone": f"z{i % 3}"}))
    await client.create(PODS, pod_body("db", g, labels={"app": "db"},
                                       spec={"nodeSelector": {"group": g, "zone": "z1"}}), ns)
    await placements(client, ns, 1)
    follow = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}
    tsc = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}}]
    bodies = [pod_body(f"cache{i}", g, labels={"app": "cache"}, spec={"affinity": follow}) for i in range(4)]
    bodies += [pod_body(f"web{i}", g, labels={"app": "web"},
                        spec={"topologySpreadConstraints": tsc},
                        annotations={"bosun.io/scheduling-strategy": "binpack"}) for i in range(9)]
    await create_pods(client, ns, bodies)
    got = await placements(client, ns, 1 + len(bodies))
    zone = {f"{g}-n{i}": f"z{i % 3}" for i in range(6)}
    assert {zone[n] for p, n in got.items() if p.startswith("cache")} == {"z1"}
    web = Counter(zone[n] for p, n in got.items() if p.startswith("web"))
    assert sorted(web.values()) == [3, 3, 3]  # binpack alone would have piled them on one node


async def test_anti_affinity_never_violated_under_200_concurrent_creates(client: Client, ns: str) -> None:
    g = group_name()
    await make_nodes(client, g, 40)
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    bodies = [pod_body(f"solo{i}", g, labels={"app": "solo"}, spec={"affinity": anti}) for i in range(60)]
    bodies += [pod_body(f"ssd{i}", g, annotations={"bosun.io/constraints": f"node.hostname!={g}-n0"},
                        labels={"app": "other"}, cpu="100m") for i in range(140)]
    await create_pods(client, ns, bodies)
    got = await placements(client, ns, 40 + 140)
    solo = [n for p, n in got.items() if p.startswith("solo")]
    assert len(solo) == len(set(solo)) == 40  # one per node; 20 stay pending
    assert all(n != f"{g}-n0" for p, n in got.items() if p.startswith("ssd"))
    await asyncio.sleep(0.3)
    got = await placements(client, ns, 180)
    assert len([p for p in got if p.startswith("solo")]) == 40


# ---- failure text and retry ---------------------------------------------------------------------

async def test_failure_message_counts_reasons_and_retries_when_a_node_joins(tmp_path: Path) -> None:
    opts = ControlPlaneOptions(controllers=["none"], scheduler=True)
    running = start_server(tmp_path / "srv", options=opts)
    client = Client(load_kubeconfig(running.kubeconfig))
    try:
        ns = "fail"
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        for i in range(3):
            await client.create(NODES, node_body(f"small-{i}", "a", cpu="1", labels={"disk": "ssd"}))
        for i in range(2):
            await client.create(NODES, node_body(f"other-{i}", "b", cpu="8", labels={"disk": "hdd"}))
        body = pod_body("big", "x", cpu="2")
        body["spec"]["nodeSelector"] = {"disk": "ssd"}
        await client.create(PODS, body, ns)
        evs = await events_for(client, ns, "big", "FailedScheduling")
        want = "0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 3 Insufficient cpu."
        assert evs and evs[0]["message"] == want and evs[0]["type"] == "Warning"
        deadline = time.monotonic() + 10
        while True:
            pod = await client.get(PODS, "big", ns)
            cond = [c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
            if cond or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert cond and cond[0]["status"] == "False" and cond[0]["reason"] == "Unschedulable"
        assert cond[0]["message"] == want
        # No busy loop: the event is aggregated, not repeated every few milliseconds.
        await asyncio.sleep(1.0)
        evs = await events_for(client, ns, "big", "FailedScheduling")
        assert len(evs) == 1 and evs[0].get("count", 1) <= 3
        await client.create(NODES, node_body("big-node", "c", cpu="4", labels={"disk": "ssd"}))
        assert (await placements(client, ns, 1)) == {"big": "big-node"}
        ok = await events_for(client, ns, "big", "Scheduled")
        assert ok and ok[0]["message"] == f"Successfully assigned {ns}/big to big-node"
    finally:
        await client.close()
        running.stop()
