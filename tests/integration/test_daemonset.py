"""DaemonSet controller against a real control plane: a pod per eligible node, following
nodes that join, leave, are relabelled or tainted; rolling updates within maxUnavailable
or maxSurge; `kubectl rollout status`.

No scheduler or node agent runs here: the test plays both, binding each daemon pod to the
node its affinity names and reporting it Running+Ready through pods/status. Every
DaemonSet selects only the nodes its test labelled, so tests share one control plane.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served, start_server
from tests.integration.helpers import BackgroundLoop, client_in, eventually, ignoring_gone, is_ready, stamp

from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource
from bosun.hollow.cluster import HollowCluster

Obj = dict[str, Any]
PODS = resource("", "v1", "pods")
NODES = resource("", "v1", "nodes")
NAMESPACES = resource("", "v1", "namespaces")
DS = resource("apps", "v1", "daemonsets")
KUBECTL = "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("ds"),
                           options=ControlPlaneOptions(controllers=["daemonset"], scheduler=False,
                                                       lease_duration=6.0))


@pytest.fixture
async def client(plane: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(plane, namespace) as c:
        try:
            yield c
        finally:
            for node in (await c.list(NODES, label_selector=f"t={namespace}"))["items"]:
                await c.delete(NODES, node["metadata"]["name"])


def pinned_node(pod: Obj) -> str | None:
    """The node a daemon pod's required affinity names (what the scheduler would bind)."""
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    for f in terms[0].get("matchFields") or []:
        if f["key"] == "metadata.name" and f["operator"] == "In":
            return str(f["values"][0])
    return None


class Agent(BackgroundLoop):
    """Scheduler and node agents in one: binds daemon pods to their node, reports them ready
    (after ``delay`` seconds, so rollouts can be observed), and removes deleted pods."""

    def __init__(self, c: Client, ns: str, delay: float = 0.0) -> None:
        self.c, self.ns, self.delay = c, ns, delay
        self.first_seen: dict[str, float] = {}

    async def _step(self) -> None:
        for p in (await self.c.list(PODS, self.ns))["items"]:
            m = p["metadata"]
            if m.get("deletionTimestamp"):
                await self.c.delete(PODS, m["name"], self.ns, grace_period_seconds=0, preconditions={"uid": m["uid"]})
                continue
            if not p["spec"].get("nodeName"):
                await self.c.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": m["name"]},
                                           "target": {"kind": "Node", "name": pinned_node(p)}},
                                    self.ns, subresource="binding")
            seen = self.first_seen.setdefault(m["uid"], time.monotonic())
            if not is_ready(p) and time.monotonic() - seen >= self.delay:
                await self.c.patch(PODS, m["name"], {"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": stamp()}]}}, self.ns,
                    subresource="status")

    async def _loop(self) -> None:
        while True:
            await ignoring_gone(self._step())
            await asyncio.sleep(0.05)


async def add_node(c: Client, ns: str, name: str, labels: dict[str, str] | None = None,
                   taints: list[Obj] | None = None, unschedulable: bool = False) -> str:
    full = f"{ns}-{name}"
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    await c.create(NODES, {"metadata": {"name": full, "labels": {"t": ns, **(labels or {})}}, "spec": spec})
    return full


def daemonset(ns: str, name: str = "agent", image: str = "busybox:1", **spec: Any) -> Obj:
    template_spec: Obj = {"terminationGracePeriodSeconds": 0, "nodeSelector": {"t": ns},
                          "containers": [{"name": "c", "image": image}]}
    template_spec.update(spec.pop("pod", {}))
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": template_spec}, **spec}}


async def pods_by_node(c: Client, ns: str) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for p in (await c.list(PODS, ns))["items"]:
        if not p["metadata"].get("deletionTimestamp"):
            out.setdefault(p["spec"].get("nodeName") or pinned_node(p) or "", []).append(p)
    return out


async def nodes_with_pods(c: Client, ns: str) -> set[str]:
    return set(await pods_by_node(c, ns))


async def status_of(c: Client, ns: str, name: str = "agent") -> Obj:
    return dict((await c.get(DS, name, ns)).get("status") or {})


async def _status_when(c: Client, ns: str, **want: Any) -> Obj | None:
    st = await status_of(c, ns)
    return st if all(st.get(k, 0) == v for k, v in want.items()) else None


async def _kubectl(plane: RunningServer, ns: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(KUBECTL, "--kubeconfig", plane.kubeconfig, "-n", ns, *args,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 40)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, (err + out).decode()
    return out.decode()


def _expect_nodes(c: Client, ns: str, nodes: set[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await nodes_with_pods(c, ns) == nodes
    return check


# -- tests -------------------------------------------------------------------------------------

async def test_one_pod_per_node_pinned_by_affinity(plane: RunningServer, client: Client, namespace: str) -> None:
    c, ns = client, namespace
    nodes = {await add_node(c, ns, f"n{i}") for i in range(3)}
    await c.create(DS, daemonset(ns), ns)
    await eventually(_expect_nodes(c, ns, nodes))
    pods = [p for ps in (await pods_by_node(c, ns)).values() for p in ps]
    assert len(pods) == 3
    pod = pods[0]
    assert not pod["spec"].get("nodeName")  # the scheduler binds; the controller only pins
    keys = {(t["key"], t.get("effect")) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert pod["metadata"]["labels"]["controller-revision-hash"]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"

    async with Agent(c, ns):
        out = await _kubectl(plane, ns, "rollout", "status", "ds/agent", "--timeout=20s")
        assert "successfully rolled out" in out
        st = await eventually(lambda: _status_when(c, ns, numberReady=3, numberAvailable=3))
    assert st["desiredNumberScheduled"] == st["currentNumberScheduled"] == st["updatedNumberScheduled"] == 3
    assert st["numberMisscheduled"] == 0 and st["observedGeneration"] == 1
    await asyncio.sleep(0.3)
    assert len([p for ps in (await pods_by_node(c, ns)).values() for p in ps]) == 3  # no duplicates


async def test_follows_nodes_joining_leaving_and_relabelled(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    a = await add_node(c, ns, "a", {"role": "edge"})
    b = await add_node(c, ns, "b", {"role": "edge"})
    await add_node(c, ns, "core", {"role": "core"})
    async with Agent(c, ns):
        await c.create(DS, daemonset(ns, pod={"nodeSelector": {"t": ns, "role": "edge"}}), ns)
        await eventually(_expect_nodes(c, ns, {a, b}))

        joined = await add_node(c, ns, "c", {"role": "edge"})
        await eventually(_expect_nodes(c, ns, {a, b, joined}))
        await eventually(lambda: _status_when(c, ns, desiredNumberScheduled=3, numberReady=3))

        await c.delete(NODES, b)
        await eventually(_expect_nodes(c, ns, {a, joined}))

        await c.patch(NODES, a, {"metadata": {"labels": {"role": "core"}}})
        await eventually(_expect_nodes(c, ns, {joined}))
        await eventually(lambda: _status_when(c, ns, desiredNumberScheduled=1, numberMisscheduled=0))

        await c.patch(NODES, a, {"metadata": {"labels": {"role": "edge"}}})
        await eventually(_expect_nodes(c, ns, {a, joined}))


async def test_taints_and_tolerations(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    plain = await add_node(c, ns, "plain")
    gpu = await add_node(c, ns, "gpu", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    cordoned = await add_node(c, ns, "cordoned", unschedulable=True, taints=[
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    async with Agent(c, ns):
        await c.create(DS, daemonset(ns, "plain"), ns)
        await c.create(DS, daemonset(ns, "tolerant", pod={"tolerations": [
            {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]}), ns)

        async def placed() -> dict[str, set[str]] | None:
            out: dict[str, set[str]] = {}
            for p in (await c.list(PODS, ns))["items"]:
                if not p["metadata"].get("deletionTimestamp"):
                    out.setdefault(p["metadata"]["labels"]["app"], set()).add(pinned_node(p) or "")
            want = {"plain": {plain, cordoned}, "tolerant": {plain, cordoned, gpu}}
            return out if out == want else None
        await eventually(placed)

        # NoSchedule added to a node keeps running daemons; NoExecute evicts the untolerated.
        await c.patch(NODES, plain, {"spec": {"taints": [{"key": "maint", "effect": "NoSchedule"}]}})
        await asyncio.sleep(0.5)
        assert await placed()
        await c.patch(NODES, plain, {"spec": {"taints": [{"key": "maint", "effect": "NoExecute"}]}})

        async def evicted() -> bool:
            nodes = {pinned_node(p) for p in (await c.list(PODS, ns))["items"]
                     if not p["metadata"].get("deletionTimestamp")}
            return plain not in nodes
        await eventually(evicted)


async def _rollout(plane: RunningServer, c: Client, ns: str, strategy: Obj, nodes: int) -> list[tuple[int, int]]:
    """Roll a DaemonSet to a new image; returns (available-old-or-new, pods) samples."""
    for i in range(nodes):
        await add_node(c, ns, f"r{i}")
    samples: list[tuple[int, int]] = []
    async with Agent(c, ns, delay=0.3):
        await c.create(DS, daemonset(ns, updateStrategy=strategy), ns)
        await eventually(lambda: _status_when(c, ns, numberAvailable=nodes, desiredNumberScheduled=nodes))
        await c.patch(DS, "agent", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "busybox:2"}]}}}}, ns)
        waiter = asyncio.create_task(_kubectl(plane, ns, "rollout", "status", "ds/agent", "--timeout=40s"))
        while not waiter.done():
            by_node = await pods_by_node(c, ns)
            available = sum(1 for ps in by_node.values() if any(is_ready(p) for p in ps))
            samples.append((available, sum(len(ps) for ps in by_node.values())))
            await asyncio.sleep(0.03)
        assert "successfully rolled out" in await waiter
    images = {p["spec"]["containers"][0]["image"] for ps in (await pods_by_node(c, ns)).values() for p in ps}
    assert images == {"busybox:2"}
    st = await status_of(c, ns)
    assert st["updatedNumberScheduled"] == st["numberAvailable"] == nodes
    return samples


async def test_rolling_update_respects_max_unavailable(plane: RunningServer, client: Client, namespace: str) -> None:
    samples = await _rollout(plane, client, namespace,
                             {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}, nodes=4)
    assert min(a for a, _ in samples) >= 3, samples
    assert min(a for a, _ in samples) < 4  # it did take a node down at a time
    assert max(n for _, n in samples) <= 4


async def test_rolling_update_with_surge_keeps_every_node_served(plane: RunningServer, client: Client,
                                                                 namespace: str) -> None:
    samples = await _rollout(plane, client, namespace,
                             {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                             nodes=3)
    assert min(a for a, _ in samples) == 3, samples
    assert max(n for _, n in samples) <= 4, samples


async def test_on_delete_keeps_old_pods(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    n = await add_node(c, ns, "x")
    async with Agent(c, ns):
        await c.create(DS, daemonset(ns, updateStrategy={"type": "OnDelete"}), ns)
        await eventually(lambda: _status_when(c, ns, numberAvailable=1))
        await c.patch(DS, "agent", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "busybox:2"}]}}}}, ns)
        await eventually(lambda: _status_when(c, ns, observedGeneration=2, updatedNumberScheduled=0))
        await asyncio.sleep(0.3)
        (old,) = (await pods_by_node(c, ns))[n]
        assert old["spec"]["containers"][0]["image"] == "busybox:1"
        await c.delete(PODS, old["metadata"]["name"], ns, grace_period_seconds=0)
        await eventually(lambda: _status_when(c, ns, updatedNumberScheduled=1, numberAvailable=1))


async def test_with_scheduler_and_hollow_nodes(tmp_path: Path, namespace: str) -> None:
    """The real scheduler binds daemon pods by their node affinity; hollow nodes run them."""
    plane = start_server(tmp_path / "plane", options=ControlPlaneOptions(
        controllers=["daemonset"], scheduler=True, lease_duration=6.0))
    try:
        async with Client.from_kubeconfig(plane.kubeconfig) as c:
            await c.create(NAMESPACES, {"metadata": {"name": namespace}})
            hollow = HollowCluster(c, 3, labels={"t": namespace}, name_prefix=f"d{namespace[2:8]}", pod_runtime=0)
            await hollow.start()
            try:
                await c.create(DS, daemonset(namespace), namespace)
                out = await _kubectl(plane, namespace, "rollout", "status", "ds/agent", "--timeout=30s")
                assert "successfully rolled out" in out
                pods = (await c.list(PODS, namespace))["items"]
                assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(hollow.names)
                assert all(p["spec"]["nodeName"] == pinned_node(p) for p in pods)
            finally:
                await hollow.stop()
                await hollow.delete_nodes()
    finally:
        plane.stop()
