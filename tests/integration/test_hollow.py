"""Hollow nodes against a real API server: registration, heartbeats, pods run without containers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import eventually, lines_until_ready

from bosun.client import ApiError, Client
from bosun.controllers._common import resource
from bosun.hollow import HollowCluster, parse_labels, parse_taints

KUBECTL = "/usr/bin/kubectl"


PODS = resource("", "v1", "pods")
NODES = resource("", "v1", "nodes")
BINDINGS = resource("", "v1", "bindings")
LEASES = resource("coordination.k8s.io", "v1", "leases")
NAMESPACES = resource("", "v1", "namespaces")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A bare API server of this module's own: hollow nodes must not leak into other tests'
    clusters (a scheduler there would place pods on them)."""
    yield from served(tmp_path_factory.mktemp("hollow-server"))


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[Client]:
    c = Client.from_kubeconfig(server.kubeconfig)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def hollow(client: Client) -> AsyncIterator[Callable[..., Awaitable[HollowCluster]]]:
    """Start hollow clusters with a unique name prefix; all are stopped even if the test fails."""
    started: list[HollowCluster] = []

    async def make(**kwargs: Any) -> HollowCluster:
        kwargs.setdefault("name_prefix", f"h{uuid.uuid4().hex[:6]}")
        h = HollowCluster(client, **kwargs)
        await h.start()
        started.append(h)
        return h

    try:
        yield make
    finally:
        for h in started:
            await h.stop()
            await h.delete_nodes()


@pytest.fixture
async def namespace(client: Client) -> AsyncIterator[str]:
    name = f"hollow-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        try:
            await client.delete(NAMESPACES, name)
        except ApiError:
            pass


async def create_bound_pod(client: Client, namespace: str, name: str, node: str, **spec: Any) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}
    await client.create(PODS, pod, namespace)
    await client.create(BINDINGS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                   "target": {"kind": "Node", "name": node}}, namespace)


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def kubectl_json(server: RunningServer, *args: str) -> Any:
    out = subprocess.run([KUBECTL, "--kubeconfig", server.kubeconfig, *args, "-o", "json"],
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


# -- command-line spellings ----------------------------------------------------------------------

def test_labels_and_taints_parse_like_kubectl() -> None:
    assert parse_labels("disk=ssd, team=a,") == {"disk": "ssd", "team": "a"}
    assert parse_taints("dedicated=gpu:NoSchedule,spot:PreferNoSchedule") == [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "spot", "effect": "PreferNoSchedule"},
    ]
    for bad in ("a=b:Sometimes", "novalue", ":NoSchedule"):
        with pytest.raises(ValueError):
            parse_taints(bad)
    with pytest.raises(ValueError):
        parse_labels("justakey")


# -- nodes ---------------------------------------------------------------------------------------

async def test_nodes_register_with_labels_capacity_and_ready(
    server: RunningServer, hollow: Callable[..., Awaitable[HollowCluster]],
) -> None:
    h = await hollow(nodes=6, cpu="8", memory="32Gi", pods=50, zones=3, labels={"disk": "ssd"},
                     taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}])
    prefix = h.names[0].rsplit("-", 1)[0]
    listed = kubectl_json(server, "get", "nodes", "-l", "disk=ssd")["items"]
    ours = sorted((n for n in listed if n["metadata"]["name"].startswith(prefix + "-")),
                  key=lambda n: int(n["metadata"]["name"].rsplit("-", 1)[1]))
    assert [n["metadata"]["name"] for n in ours] == [f"{prefix}-{i}" for i in range(6)]
    zones = [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in ours]
    assert zones == ["zone-0", "zone-1", "zone-2", "zone-0", "zone-1", "zone-2"]
    ips = set()
    for n in ours:
        labels = n["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == n["metadata"]["name"]
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["node.kubernetes.io/instance-type"] == "hollow"
        assert "kubernetes.io/arch" in labels
        st = n["status"]
        for key in ("capacity", "allocatable"):
            assert st[key]["cpu"] == "8" and st[key]["memory"] == "32Gi" and st[key]["pods"] == "50"
            assert "ephemeral-storage" in st[key]
        assert conditions(n) == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                                 "PIDPressure": "False"}
        assert n["spec"]["taints"] == [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]
        assert st["nodeInfo"]["operatingSystem"] == "linux"
        internal = [a["address"] for a in st["addresses"] if a["type"] == "InternalIP"]
        assert len(internal) == 1 and internal[0].startswith("10.200.")
        ips.add(internal[0])
    assert len(ips) == 6


async def test_leases_are_renewed_until_stopped(
    client: Client, hollow: Callable[..., Awaitable[HollowCluster]],
) -> None:
    h = await hollow(nodes=3, heartbeat=0.3)
    name = h.names[2]

    async def renew_time() -> str | None:
        try:
            lease = await client.get(LEASES, name, "kube-node-lease")
        except ApiError:
            return None
        assert lease["spec"]["holderIdentity"] == name
        return str(lease["spec"]["renewTime"])

    first = await eventually(renew_time, 10)
    await eventually(lambda: _differs(renew_time, first), 10)
    lease = await client.get(LEASES, name, "kube-node-lease")
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"

    await h.stop()
    stopped_at = await renew_time()
    await asyncio.sleep(1.0)  # more than three heartbeat periods
    assert await renew_time() == stopped_at


async def _differs(get: Callable[[], Awaitable[str | None]], old: str) -> bool:
    new = await get()
    return new is not None and new != old


async def test_a_live_hollow_node_reports_ready_again(
    client: Client, hollow: Callable[..., Awaitable[HollowCluster]],
) -> None:
    """As a kubelet does when the lifecycle controller marked it NotReady after late heartbeats."""
    h = await hollow(nodes=1)
    name = h.names[0]
    await client.patch(NODES, name, {"status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
         "message": "Kubelet stopped posting node status."}]}}, subresource="status")

    async def ready() -> bool:
        return conditions(await client.get(NODES, name)).get("Ready") == "True"

    await eventually(ready, 10)


async def test_restarted_hollow_process_takes_its_nodes_back(
    client: Client, hollow: Callable[..., Awaitable[HollowCluster]],
) -> None:
    first = await hollow(nodes=2)
    uid = (await client.get(NODES, first.names[0]))["metadata"]["uid"]
    await first.stop()
    prefix = first.names[0].rsplit("-", 1)[0]
    second = await hollow(nodes=2, name_prefix=prefix, labels={"generation": "2"})
    node = await client.get(NODES, second.names[0])
    assert node["metadata"]["uid"] == uid
    assert node["metadata"]["labels"]["generation"] == "2"


# -- pods ----------------------------------------------------------------------------------------

async def test_bound_pod_becomes_running_and_ready(
    client: Client, namespace: str, hollow: Callable[..., Awaitable[HollowCluster]],
) -> None:
    h = await hollow(nodes=2)
    node = await client.get(NODES, h.names[1])
    host_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    await create_bound_pod(client, namespace, "web", h.names[1])

    async def running() -> dict[str, Any] | None:
        pod = await client.get(PODS, "web", namespace)
        return pod if pod["status"].get("phase") == "Running" else None

    pod = await eventually(running, 10)
    st = pod["status"]
    assert conditions(pod) | {"PodReadyToStartContainers": "True"} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "ContainersReady": "True",
        "Ready": "True", "PodScheduled": "True"}
    assert st["hostIP"] == host_ip
    assert st["podIP"].startswith("10.") and st["podIP"] != host_ip
    assert st["startTime"]
    (cs,) = st["containerStatuses"]
    assert cs["name"] == "app" and cs["ready"] is True and "running" in cs["state"]

    # Another pod on the same node gets another address.
    await create_bound_pod(client, namespace, "web2", h.names[1])

    async def second_ip() -> str | None:
        return (await client.get(PODS, "web2", namespace))["status"].get("podIP")

    assert await eventually(second_ip, 10) != st["podIP"]


async def test_run_to_completion_pod_succeeds_after_the_runtime(
    client: Client, namespace: str, hollow: Callable[..., Awaitable[HollowCluster]],
) -> None:
    h = await hollow(nodes=1, pod_runtime=0.5)
    await create_bound_pod(client, namespace, "job-pod", h.names[0], restartPolicy="Never")
    await create_bound_pod(client, namespace, "server", h.names[0], restartPolicy="Always")

    async def phase(name: str) -> str:
        return str((await client.get(PODS, name, namespace))["status"].get("phase"))

    await eventually(lambda: _equals(phase("job-pod"), "Succeeded"), 10)
    pod = await client.get(PODS, "job-pod", namespace)
    (cs,) = pod["status"]["containerStatuses"]
    term = cs["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert conditions(pod)["Ready"] == "False"
    # An Always pod keeps running.
    await asyncio.sleep(0.7)
    assert await phase("server") == "Running"


async def _equals(value: Awaitable[str], want: str) -> bool:
    return await value == want


async def test_graceful_delete_of_a_pod_on_a_hollow_node_completes_at_once(
    client: Client, namespace: str, hollow: Callable[..., Awaitable[HollowCluster]],
) -> None:
    h = await hollow(nodes=1)
    await create_bound_pod(client, namespace, "victim", h.names[0], terminationGracePeriodSeconds=300)

    async def running() -> bool:
        return (await client.get(PODS, "victim", namespace))["status"].get("phase") == "Running"

    await eventually(running, 10)
    await client.delete(PODS, "victim", namespace)  # a 300 s grace period: the node must finish it

    async def gone() -> bool:
        try:
            await client.get(PODS, "victim", namespace)
        except ApiError as e:
            return e.status == 404
        return False

    await eventually(gone, within=5)


async def test_many_pods_run_quickly(
    client: Client, namespace: str, hollow: Callable[..., Awaitable[HollowCluster]],
) -> None:
    h = await hollow(nodes=10)
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await create_bound_pod(client, namespace, f"p{i}", h.names[i % 10])

    await asyncio.gather(*(one(i) for i in range(300)))

    async def all_running() -> bool:
        items, _ = await client.list_all(PODS, namespace)
        return len(items) == 300 and all(p["status"].get("phase") == "Running" for p in items)

    await eventually(all_running, within=30)


# -- the command ---------------------------------------------------------------------------------

def test_bosun_hollow_command_runs_nodes_until_sigterm(server: RunningServer) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}"
    bosun = str(Path(sys.executable).with_name("bosun"))
    proc = subprocess.Popen(
        [bosun, "hollow", "--kubeconfig", server.kubeconfig, "--nodes", "3", "--name-prefix", prefix,
         "--zones", "2", "--labels", "tier=edge", "--heartbeat", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = lines_until_ready(proc, 20)
        assert lines and lines[-1].strip() == "ready", lines
        assert f"{prefix}-0..{prefix}-2" in lines[0]
        nodes = kubectl_json(server, "get", "nodes", "-l", "tier=edge")["items"]
        ours = {n["metadata"]["name"]: n for n in nodes if n["metadata"]["name"].startswith(prefix)}
        assert set(ours) == {f"{prefix}-{i}" for i in range(3)}
        assert ours[f"{prefix}-1"]["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-1"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([KUBECTL, "--kubeconfig", server.kubeconfig, "delete", "nodes", "-l", "tier=edge",
                        "--wait=false"], capture_output=True, timeout=30)


def test_bosun_hollow_rejects_bad_taints(server: RunningServer) -> None:
    bosun = str(Path(sys.executable).with_name("bosun"))
    out = subprocess.run([bosun, "hollow", "--kubeconfig", server.kubeconfig, "--nodes", "1",
                          "--taints", "gpu=yes:Sometimes"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "effect must be one of NoSchedule, PreferNoSchedule, NoExecute" in out.stderr
