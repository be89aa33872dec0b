"""Node failure as users see it: a node that stops heartbeating turns Ready=Unknown and gets the
unreachable taints within the grace period, its pods are evicted once their toleration runs
out, a node that comes back is untainted, and when most nodes vanish at once nothing is evicted."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from tests.conftest import RunningServer, served, start_server
from tests.integration.helpers import client_in, eventually

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource
from bosun.controllers._taint_eviction import eviction_deadline, tolerates
from bosun.controllers.nodelifecycle import apply_taints, mark_unknown, wanted_taints
from bosun.hollow.cluster import HollowCluster

PODS = resource("", "v1", "pods")
NODES = resource("", "v1", "nodes")
EVENTS = resource("", "v1", "events")
NAMESPACES = resource("", "v1", "namespaces")
GRACE = 2.0
EVICTION = 3.0
UNREACHABLE = "node.kubernetes.io/unreachable"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    options = ControlPlaneOptions(controllers=["nodelifecycle", "podgc"], scheduler=False, lease_duration=4.0,
                                  node_monitor_grace_period=GRACE, pod_eviction_timeout=EVICTION)
    yield from served(tmp_path_factory.mktemp("nodelifecycle"), options=options)


@pytest.fixture
async def client(plane: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(plane, namespace, delete=True) as c:
        yield c


@pytest.fixture
async def hollow(client: Client) -> AsyncIterator[Callable[[int], Awaitable[HollowCluster]]]:
    """Start groups of hollow nodes; every group is stopped and its Nodes deleted at the end
    (the whole cluster's health decides disruption mode, so tests must not leave nodes)."""
    groups: list[HollowCluster] = []

    async def make(n: int) -> HollowCluster:
        h = HollowCluster(client, n, heartbeat=0.4, name_prefix=f"h{uuid.uuid4().hex[:6]}", pod_runtime=0)
        groups.append(h)
        await h.start()
        return h

    try:
        yield make
    finally:
        for h in groups:
            await h.stop()
            await h.delete_nodes()


def pod(name: str, node: str, tolerations: list[Obj] | None = None) -> Obj:
    spec: Obj = {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]}
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name}, "spec": spec}


async def exists(c: Client, ns: str, name: str) -> bool:
    try:
        await c.get(PODS, name, ns)
    except ApiError as e:
        if e.status == 404:
            return False
        raise
    return True


def ready(node: Obj) -> Obj:
    return next(x for x in node["status"]["conditions"] if x["type"] == "Ready")


def taint_keys(node: Obj) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}


async def test_dead_node_is_tainted_its_pods_evicted_and_untainted_when_back(client: Client, namespace: str,
                                                                             hollow: Any) -> None:
    c, ns = client, namespace
    live: HollowCluster = await hollow(2)
    dying: HollowCluster = await hollow(1)
    dead = dying.names[0]
    forever = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    later = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]
    await c.create(PODS, pod("plain", dead), ns)
    await c.create(PODS, pod("stays", dead, forever), ns)
    await c.create(PODS, pod("later", dead, later), ns)
    await c.create(PODS, pod("elsewhere", live.names[0]), ns)

    async def running() -> bool:
        pods = (await c.list(PODS, ns))["items"]
        return len(pods) == 4 and all(p.get("status", {}).get("phase") == "Running" for p in pods)

    await eventually(running, 10)
    await dying.stop()  # the node's agent dies: no more lease renewals
    stopped = time.monotonic()

    async def tainted() -> Obj | None:
        node = await c.get(NODES, dead)
        return node if {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")} <= taint_keys(node) else None

    node = await eventually(tainted, GRACE + 5)
    assert time.monotonic() - stopped < GRACE + 4
    cond = ready(node)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    noexec = next(t for t in node["spec"]["taints"] if t["effect"] == "NoExecute")
    assert noexec["timeAdded"]
    # Pods without their own toleration get pod_eviction_timeout seconds from when the node
    # was last heard from (at most one heartbeat before it stopped), not less.
    await eventually(lambda: _gone(c, ns, "plain"), EVICTION + 5)
    assert EVICTION - 0.5 <= time.monotonic() - stopped < EVICTION + 3
    assert await exists(c, ns, "stays") and await exists(c, ns, "later") and await exists(c, ns, "elsewhere")
    evs = (await c.list(EVENTS, ns, field_selector="involvedObject.name=plain"))["items"]
    assert any(e["reason"] == "TaintManagerEviction" for e in evs)
    for name in live.names:  # healthy nodes are left alone
        assert ready(await c.get(NODES, name))["status"] == "True"
        assert not taint_keys(await c.get(NODES, name))

    await dying.start()  # the agent comes back

    async def untainted() -> bool:
        node = await c.get(NODES, dead)
        return not taint_keys(node) and ready(node)["status"] == "True"

    await eventually(untainted, GRACE + 5)
    assert await exists(c, ns, "later")  # its 30 seconds had not run out


async def _gone(c: Client, ns: str, name: str) -> bool:
    return not await exists(c, ns, name)


async def test_most_nodes_down_at_once_evicts_nothing(client: Client, namespace: str, hollow: Any) -> None:
    c, ns = client, namespace
    live: HollowCluster = await hollow(1)
    down: HollowCluster = await hollow(4)
    for i, name in enumerate(down.names):
        await c.create(PODS, pod(f"p{i}", name), ns)
    await down.stop()

    async def all_unknown() -> bool:
        nodes = [await c.get(NODES, n) for n in down.names]
        return all(ready(n)["status"] == "Unknown" and (UNREACHABLE, "NoSchedule") in taint_keys(n) for n in nodes)

    await eventually(all_unknown, GRACE + 5)

    async def announced() -> bool:
        """The event goes to the nodes unhealthy when the mode began: some of the four, as their
        heartbeats run out one after another."""
        evs = (await c.list(EVENTS, "default"))["items"]
        return any(e["reason"] == "FullDisruption" and e["involvedObject"]["name"] in down.names for e in evs)

    await eventually(announced, 10)
    # Longer than the eviction timeout: in full disruption nothing is evicted.
    await asyncio.sleep(EVICTION + 1.5)
    for i, name in enumerate(down.names):
        assert await exists(c, ns, f"p{i}")
        assert (UNREACHABLE, "NoExecute") not in taint_keys(await c.get(NODES, name))
    assert ready(await c.get(NODES, live.names[0]))["status"] == "True"


async def test_cordon_taints_unschedulable(client: Client, plane: RunningServer, hollow: Any) -> None:
    group: HollowCluster = await hollow(1)
    name = group.names[0]
    kubectl = ["/usr/bin/kubectl", "--kubeconfig", plane.kubeconfig]
    await asyncio.to_thread(subprocess.run, [*kubectl, "cordon", name], check=True, capture_output=True, timeout=30)

    async def has(want: bool) -> bool:
        keys = taint_keys(await client.get(NODES, name))
        return (("node.kubernetes.io/unschedulable", "NoSchedule") in keys) == want

    await eventually(lambda: has(True), 10)
    await asyncio.to_thread(subprocess.run, [*kubectl, "uncordon", name], check=True, capture_output=True,
                            timeout=30)
    await eventually(lambda: has(False), 10)


async def test_pods_of_deleted_nodes_are_collected(client: Client, namespace: str, hollow: Any) -> None:
    c, ns = client, namespace
    group: HollowCluster = await hollow(1)
    await c.create(PODS, pod("ghost", f"gone-{uuid.uuid4().hex[:6]}"), ns)  # bound to a node never seen
    await c.create(PODS, pod("kept", group.names[0]), ns)
    await c.create(PODS, pod("orphan", group.names[0], [{"operator": "Exists"}]), ns)
    await eventually(lambda: _gone(c, ns, "ghost"), 10)
    evs = (await c.list(EVENTS, ns, field_selector="involvedObject.name=ghost"))["items"]
    assert any(e["reason"] == "PodGC" for e in evs)
    assert await exists(c, ns, "kept")

    await group.stop()
    await group.delete_nodes()  # the node is removed for good: even pods tolerating everything go
    await eventually(lambda: _gone(c, ns, "orphan"), 10)


async def test_pods_of_a_dead_node_are_replaced_on_healthy_nodes(tmp_path: Any, namespace: str) -> None:
    """The whole story with the scheduler and the ReplicaSet controller: the replacements run
    elsewhere about max(grace, eviction timeout) after the node died."""
    options = ControlPlaneOptions(controllers=["replicaset", "nodelifecycle"], scheduler=True, lease_duration=4.0,
                                  node_monitor_grace_period=GRACE, pod_eviction_timeout=EVICTION)
    plane = start_server(tmp_path / "server", options=options)
    groups: list[HollowCluster] = []
    try:
        async with Client.from_kubeconfig(plane.kubeconfig) as c:
            try:
                await _replacement_story(c, namespace, groups)
            finally:
                for h in groups:
                    await h.stop()
    finally:
        plane.stop()


async def _replacement_story(c: Client, namespace: str, groups: list[HollowCluster]) -> None:
    await c.create(NAMESPACES, {"metadata": {"name": namespace}})
    for n in (2, 1):
        groups.append(HollowCluster(c, n, heartbeat=0.4, name_prefix=f"r{uuid.uuid4().hex[:6]}", pod_runtime=0))
        await groups[-1].start()
    live, dying = groups
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
          "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}}
    await c.create(resource("apps", "v1", "replicasets"), rs, namespace)

    async def placement(avoid: str | None) -> dict[str, int] | None:
        pods = (await c.list(PODS, namespace))["items"]
        good = [p for p in pods if p.get("status", {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp") and p["spec"].get("nodeName") != avoid]
        if len(good) != 6:
            return None
        counts: dict[str, int] = {}
        for p in good:
            counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
        return counts

    before = await eventually(lambda: placement(None), 20)
    dead = dying.names[0]
    assert before.get(dead), f"the scheduler put nothing on {dead}: {before}"
    await dying.stop()
    stopped = time.monotonic()
    after = await eventually(lambda: placement(dead), GRACE + EVICTION + 10)
    took = time.monotonic() - stopped
    print(f"node death -> {before[dead]} replacement(s) running in {took:.2f}s")
    assert set(after) <= set(live.names)
    assert took < max(GRACE, EVICTION) + 4, f"replacement took {took:.1f}s"


# ---- the rules themselves ---------------------------------------------------------------------

def test_conditions_and_taints_follow_ready() -> None:
    node: Obj = {"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
                 "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}}
    assert wanted_taints(node, evictions_allowed=True) == {
        ("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")}
    assert wanted_taints(node, evictions_allowed=False) == {("node.kubernetes.io/not-ready", "NoSchedule")}
    assert mark_unknown(node, "2026-01-01T00:00:00Z")
    assert not mark_unknown(node, "2026-01-01T00:00:05Z")  # already Unknown: no write
    types = {c["type"]: c for c in node["status"]["conditions"]}
    assert types["Ready"]["status"] == "Unknown" and types["MemoryPressure"]["reason"] == "NodeStatusNeverUpdated"
    taints = apply_taints(node, wanted_taints(node, evictions_allowed=True), "2026-01-01T00:00:06Z")
    assert taints is not None
    assert {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"} in taints  # others' taints kept
    assert {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:06Z"} in taints
    node["spec"]["taints"] = taints
    assert apply_taints(node, wanted_taints(node, evictions_allowed=True), "later") is None


def test_toleration_rules() -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    unreachable = {"key": UNREACHABLE, "effect": "NoExecute"}
    custom = {"key": "maintenance", "value": "now", "effect": "NoExecute"}

    def deadline(tols: list[Obj], taints: list[Obj]) -> datetime | None:
        return eviction_deadline({"spec": {"tolerations": tols}}, taints, 10, lambda _t: t0)

    assert deadline([], [unreachable]) == t0 + timedelta(seconds=10)  # Bosun's default toleration
    assert deadline([], [custom]) == t0  # untolerated: at once
    assert deadline([{"operator": "Exists"}], [unreachable, custom]) is None  # tolerates everything
    assert deadline([{"key": "maintenance", "value": "now", "tolerationSeconds": 3}], [custom]) \
        == t0 + timedelta(seconds=3)
    assert not tolerates({"key": "maintenance", "value": "later"}, custom)
    assert tolerates({"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}, custom)
