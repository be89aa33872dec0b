"""The scheduler with hollow nodes (simulated kubelets that run and delete pods): many
concurrent creates honour constraints and spread evenly, and a high-priority pod preempts
a lower-priority one when nothing fits."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from tests.conftest import RunningServer, served

from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource
from bosun.hollow import HollowCluster

PODS = resource("", "v1", "pods")
NAMESPACES = resource("", "v1", "namespaces")
EVENTS = resource("", "v1", "events")
CONFIGMAPS = resource("", "v1", "configmaps")
NODES = resource("", "v1", "nodes")
PRIORITY_CLASSES = resource("scheduling.k8s.io", "v1", "priorityclasses")


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    opts = ControlPlaneOptions(controllers=["none"], scheduler=True)
    yield from served(tmp_path_factory.mktemp("sched-hollow"), options=opts)


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[Client]:
    c = Client(load_kubeconfig(server.kubeconfig))
    try:
        yield c
    finally:
        await c.close()


def pod(name: str, *, cpu: str = "100m", annotations: dict[str, str] | None = None, owner: str = "",
        priority_class: str = "") -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "labels": {"app": "web"}, "annotations": annotations or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner,
                                    "controller": True}]
    spec: dict[str, object] = {"containers": [{"name": "c", "image": "busybox",
                                                "resources": {"requests": {"cpu": cpu}}}]}
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


async def running_pods(client: Client, ns: str, want: int, within: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + within
    while True:
        items = (await client.list(PODS, ns))["items"]
        out = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in items
               if p["spec"].get("nodeName") and (p.get("status") or {}).get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp")}
        if len(out) >= want:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(out)}/{want} pods running")
        await asyncio.sleep(0.2)


async def test_300_concurrent_creates_spread_evenly_and_honour_constraints(client: Client) -> None:
    ns = "many"
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    async with HollowCluster(client, 30, zones=3, name_prefix="many") as hollow:
        owner = (await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, ns))["metadata"]["uid"]
        ann = {"bosun.io/constraints": "node.labels.topology.kubernetes.io/zone!=zone-0"}
        sem = asyncio.Semaphore(100)

        async def create(i: int) -> None:
            async with sem:
                await client.create(PODS, pod(f"web-{i}", annotations=ann, owner=owner), ns)

        await asyncio.gather(*(create(i) for i in range(300)))
        got = await running_pods(client, ns, 300, within=50)
        zone_of = {}
        for n in hollow.names:
            node = await client.get(NODES, n)
            zone_of[n] = node["metadata"]["labels"]["topology.kubernetes.io/zone"]
        assert all(zone_of[n] != "zone-0" for n in got.values())
        counts = Counter(got.values())
        assert len(counts) == sum(1 for z in zone_of.values() if z != "zone-0")
        assert max(counts.values()) - min(counts.values()) <= 1


async def test_high_priority_pod_preempts_a_lower_one(client: Client) -> None:
    ns = "prio"
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    await client.create(PRIORITY_CLASSES, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                           "metadata": {"name": "high"}, "value": 1000})
    async with HollowCluster(client, 1, cpu="1", name_prefix="prio"):
        for i in range(2):
            await client.create(PODS, pod(f"low-{i}", cpu="500m"), ns)
        await running_pods(client, ns, 2)
        await client.create(PODS, pod("vip", cpu="500m", priority_class="high"), ns)
        deadline = time.monotonic() + 30
        while True:
            vip = await client.get(PODS, "vip", ns)
            if vip["spec"].get("nodeName") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert vip["spec"].get("nodeName") == "prio-0"
        evs = [e for e in (await client.list(EVENTS, ns))["items"] if e["reason"] == "Preempted"]
        assert len(evs) == 1 and evs[0]["involvedObject"]["name"].startswith("low-")
        assert evs[0]["message"].endswith("on node prio-0")
        left = [p["metadata"]["name"] for p in (await client.list(PODS, ns))["items"]]
        assert "vip" in left and len([n for n in left if n.startswith("low-")]) == 1
