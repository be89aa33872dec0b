"""StatefulSet controller against a real control plane: ordered creation, stable storage,
ordered scale-down, partitioned rolling updates, revisions and `kubectl rollout status`.

No scheduler or node agent runs here: the test plays the node agent, binding pods to a
Node object and reporting them Running+Ready through pods/status.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served, start_server
from tests.integration.helpers import BackgroundLoop, client_in, eventually, ignoring_gone, is_ready, stamp

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource
from bosun.hollow.cluster import HollowCluster

Obj = dict[str, Any]
PODS = resource("", "v1", "pods")
NODES = resource("", "v1", "nodes")
NAMESPACES = resource("", "v1", "namespaces")
PVCS = resource("", "v1", "persistentvolumeclaims")
STS = resource("apps", "v1", "statefulsets")
REVISIONS = resource("apps", "v1", "controllerrevisions")
KUBECTL = "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("sts"),
                           options=ControlPlaneOptions(controllers=["statefulset"], scheduler=False,
                                                       lease_duration=6.0))


@pytest.fixture
async def client(plane: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(plane, namespace) as c:
        try:
            await c.create(NODES, {"metadata": {"name": "node-a"}})
        except ApiError as e:
            if e.status != 409:
                raise
        yield c


async def run_pod(c: Client, pod: Obj, node: str = "node-a") -> None:
    """What a node agent does for a new pod: bind it (if nobody did) and report it ready."""
    m = pod["metadata"]
    if not (pod.get("spec") or {}).get("nodeName"):
        await c.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": m["name"]},
                              "target": {"kind": "Node", "name": node}}, m["namespace"], subresource="binding")
    await c.patch(PODS, m["name"], {"status": {"phase": "Running", "podIP": "10.0.0.9", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": stamp()}]}}, m["namespace"], subresource="status")


class Agent(BackgroundLoop):
    """Runs every pod of a namespace as it appears, remembering in which order it saw them
    and which pods were already ready at that moment; removes pods being deleted once
    their (imaginary) containers have stopped."""

    def __init__(self, c: Client, ns: str) -> None:
        self.c, self.ns = c, ns
        self.seen: list[tuple[str, set[str]]] = []
        self.paused = False

    async def _loop(self) -> None:
        while True:
            if not self.paused:
                pods = (await self.c.list(PODS, self.ns))["items"]
                ready = {p["metadata"]["name"] for p in pods if is_ready(p)}
                for p in pods:
                    m = p["metadata"]
                    if m.get("deletionTimestamp"):
                        # Containers stopped: the agent removes the pod for good.
                        await ignoring_gone(self.c.delete(PODS, m["name"], self.ns, grace_period_seconds=0,
                                                          preconditions={"uid": m["uid"]}))
                    elif not is_ready(p):
                        self.seen.append((p["metadata"]["name"], set(ready)))
                        await ignoring_gone(run_pod(self.c, p))
            await asyncio.sleep(0.05)


def statefulset(name: str, replicas: int, *, image: str = "nginx:1", policy: str = "OrderedReady",
                claims: bool = True, **spec: Any) -> Obj:
    body: Obj = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "c", "image": image}]}},
                 **spec},
    }
    if claims:
        body["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    return body


async def pods_of(c: Client, ns: str) -> dict[str, Obj]:
    return {p["metadata"]["name"]: p for p in (await c.list(PODS, ns))["items"]}


async def live_pods(c: Client, ns: str) -> dict[str, Obj]:
    return {k: p for k, p in (await pods_of(c, ns)).items() if not p["metadata"].get("deletionTimestamp")}


async def claims_of(c: Client, ns: str) -> set[str]:
    return {p["metadata"]["name"] for p in (await c.list(PVCS, ns))["items"]}


async def status_of(c: Client, ns: str, name: str) -> Obj:
    return dict((await c.get(STS, name, ns)).get("status") or {})


async def test_pods_wait_for_their_predecessor_and_carry_identity(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    await c.create(STS, statefulset("web", 3), ns)
    first = await eventually(lambda: _get_pod(c, ns, "web-0"))
    await asyncio.sleep(0.6)  # give the controller the chance to (wrongly) go on without web-0
    assert set(await pods_of(c, ns)) == {"web-0"}
    assert await claims_of(c, ns) == {"data-web-0"}

    labels = first["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert labels["apps.kubernetes.io/pod-index"] == "0"
    assert labels["controller-revision-hash"].startswith("web-")
    assert first["spec"]["hostname"] == "web-0" and first["spec"]["subdomain"] == "web"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}} in first["spec"]["volumes"]
    assert first["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"

    async with Agent(c, ns) as agent:
        await eventually(lambda: _all_ready(c, ns, 3))
    order = [name for name, _ in agent.seen]
    assert order.index("web-1") < order.index("web-2")
    for name, ready_then in agent.seen:
        ordinal = int(name.rsplit("-", 1)[1])
        assert {f"web-{i}" for i in range(ordinal)} <= ready_then, (name, ready_then)
    assert await claims_of(c, ns) == {"data-web-0", "data-web-1", "data-web-2"}

    st = await eventually(lambda: _status_when(c, ns, "web", readyReplicas=3, availableReplicas=3))
    assert st["replicas"] == 3 and st["currentReplicas"] == 3 and st["updatedReplicas"] == 3
    assert st["currentRevision"] == st["updateRevision"] == labels["controller-revision-hash"]
    revs = (await c.list(REVISIONS, ns))["items"]
    assert [r["metadata"]["name"] for r in revs] == [st["updateRevision"]]
    assert revs[0]["revision"] == 1


async def test_parallel_policy_creates_every_pod_at_once(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    await c.create(STS, statefulset("par", 3, policy="Parallel", claims=False), ns)
    await eventually(lambda: _names_are(c, ns, {"par-0", "par-1", "par-2"}))


async def test_replaced_pod_keeps_its_name_and_claim(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    async with Agent(c, ns):
        await c.create(STS, statefulset("db", 2), ns)
        await eventually(lambda: _all_ready(c, ns, 2))
        old = (await pods_of(c, ns))["db-1"]
        await c.delete(PODS, "db-1", ns, grace_period_seconds=0)
        new = await eventually(lambda: _replaced(c, ns, "db-1", old["metadata"]["uid"]))
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}} in new["spec"]["volumes"]
        assert await claims_of(c, ns) == {"data-db-0", "data-db-1"}

        # A failed pod is replaced too (same name, new pod).
        failed = (await pods_of(c, ns))["db-0"]
        await c.patch(PODS, "db-0", {"status": {"phase": "Failed"}}, ns, subresource="status")
        await eventually(lambda: _replaced(c, ns, "db-0", failed["metadata"]["uid"]))
        await eventually(lambda: _all_ready(c, ns, 2))


async def test_scale_down_goes_from_the_highest_ordinal_and_keeps_claims(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    async with Agent(c, ns):
        await c.create(STS, statefulset("kv", 4), ns)
        await eventually(lambda: _all_ready(c, ns, 4))
        rv = (await c.list(PODS, ns))["metadata"]["resourceVersion"]
        await c.patch(STS, "kv", {"spec": {"replicas": 1}}, ns)
        # Watch, not poll: with an instant node agent the steps are milliseconds apart.
        order: list[tuple[str, str]] = []  # (event, pod) for deletions starting and ending

        async def follow() -> None:
            async for ev in c.watch(PODS, ns, resource_version=rv, timeout_seconds=15):
                name = ev["object"]["metadata"]["name"]
                if ev["type"] == "DELETED":
                    order.append(("gone", name))
                    if name == "kv-1":
                        return
                elif ev["object"]["metadata"].get("deletionTimestamp") and ("deleting", name) not in order:
                    order.append(("deleting", name))

        await asyncio.wait_for(follow(), 20)
    assert set(await pods_of(c, ns)) == {"kv-0"}
    # Highest ordinal first, and each deletion starts only once the previous pod is gone.
    deletions = [n for what, n in order if what == "gone"]
    assert deletions == ["kv-3", "kv-2", "kv-1"], order
    for prev, nxt in itertools.pairwise(["kv-3", "kv-2", "kv-1"]):
        if ("deleting", nxt) in order:
            assert order.index(("gone", prev)) < order.index(("deleting", nxt)), order
    assert await claims_of(c, ns) == {"data-kv-0", "data-kv-1", "data-kv-2", "data-kv-3"}
    await eventually(lambda: _status_when(c, ns, "kv", replicas=1, readyReplicas=1))

    # Scaling back up reuses the kept claims.
    async with Agent(c, ns):
        await c.patch(STS, "kv", {"spec": {"replicas": 3}}, ns)
        await eventually(lambda: _all_ready(c, ns, 3))
    assert await claims_of(c, ns) == {"data-kv-0", "data-kv-1", "data-kv-2", "data-kv-3"}


async def test_when_scaled_delete_policy_removes_claims(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    async with Agent(c, ns):
        await c.create(STS, statefulset("tmp", 2, persistentVolumeClaimRetentionPolicy={
            "whenScaled": "Delete", "whenDeleted": "Retain"}), ns)
        await eventually(lambda: _all_ready(c, ns, 2))
        await c.patch(STS, "tmp", {"spec": {"replicas": 1}}, ns)

        async def claims_shrunk() -> bool:
            return await claims_of(c, ns) == {"data-tmp-0"}
        await eventually(claims_shrunk)


async def test_when_deleted_delete_policy_removes_claims_with_the_set(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    async with Agent(c, ns):
        await c.create(STS, statefulset("gone", 2, persistentVolumeClaimRetentionPolicy={
            "whenScaled": "Retain", "whenDeleted": "Delete"}), ns)
        await eventually(lambda: _all_ready(c, ns, 2))
        assert await claims_of(c, ns) == {"data-gone-0", "data-gone-1"}
        await c.delete(STS, "gone", ns)

        async def all_gone() -> bool:
            return not await claims_of(c, ns) and not await pods_of(c, ns)
        await eventually(all_gone)


async def test_partitioned_rolling_update_and_rollout_status(plane: RunningServer, client: Client,
                                                            namespace: str) -> None:
    c, ns = client, namespace
    async with Agent(c, ns):
        await c.create(STS, statefulset("app", 3, claims=False), ns)
        await eventually(lambda: _all_ready(c, ns, 3))
        st0 = await eventually(lambda: _status_when(c, ns, "app", readyReplicas=3, currentReplicas=3))
        old_rev = st0["currentRevision"]

        # Partition 2: only app-2 moves to the new template.
        await c.patch(STS, "app", {"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}, ns)
        st = await eventually(lambda: _status_when(c, ns, "app", updatedReplicas=1, readyReplicas=3))
        new_rev = st["updateRevision"]
        assert new_rev != old_rev and st["currentRevision"] == old_rev and st["currentReplicas"] == 2
        pods = await live_pods(c, ns)
        assert _image(pods["app-2"]) == "nginx:2" and _image(pods["app-1"]) == "nginx:1"
        assert pods["app-2"]["metadata"]["labels"]["controller-revision-hash"] == new_rev
        assert _image(pods["app-0"]) == "nginx:1"
        # kubectl reports the partitioned rollout as done.
        out = await _kubectl(plane, ns, "rollout", "status", "sts/app", "--timeout=20s")
        assert "partitioned roll out complete" in out

        # A pod below the partition that is deleted comes back at the old revision.
        await c.delete(PODS, "app-0", ns, grace_period_seconds=0)
        await eventually(lambda: _all_ready(c, ns, 3))
        assert _image((await live_pods(c, ns))["app-0"]) == "nginx:1"

        # Partition 0: the rest follow, highest ordinal first; current becomes the update.
        await c.patch(STS, "app", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, ns)
        out = await _kubectl(plane, ns, "rollout", "status", "sts/app", "--timeout=30s")
        assert "roll out complete" in out
        st = await status_of(c, ns, "app")
        assert st["currentRevision"] == st["updateRevision"] == new_rev
        assert st["updatedReplicas"] == st["currentReplicas"] == 3
        assert {_image(p) for p in (await live_pods(c, ns)).values()} == {"nginx:2"}
    revs = sorted((await c.list(REVISIONS, ns))["items"], key=lambda r: r["revision"])
    assert [r["metadata"]["name"] for r in revs] == [old_rev, new_rev]
    assert [r["revision"] for r in revs] == [1, 2]


async def test_on_delete_strategy_waits_for_the_user(client: Client, namespace: str) -> None:
    c, ns = client, namespace
    async with Agent(c, ns):
        await c.create(STS, statefulset("od", 2, claims=False, updateStrategy={"type": "OnDelete"}), ns)
        await eventually(lambda: _all_ready(c, ns, 2))
        await c.patch(STS, "od", {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}},
                      ns)
        await eventually(lambda: _status_when(c, ns, "od", updatedReplicas=0, observedGeneration=2))
        await asyncio.sleep(0.5)
        assert {_image(p) for p in (await live_pods(c, ns)).values()} == {"nginx:1"}
        await c.delete(PODS, "od-1", ns, grace_period_seconds=0)
        await eventually(lambda: _status_when(c, ns, "od", updatedReplicas=1, readyReplicas=2))
        assert _image((await live_pods(c, ns))["od-1"]) == "nginx:2"


async def test_kubectl_scale_and_get(plane: RunningServer, client: Client, namespace: str) -> None:
    c, ns = client, namespace
    async with Agent(c, ns):
        await c.create(STS, statefulset("sc", 1, claims=False), ns)
        await _kubectl(plane, ns, "scale", "sts/sc", "--replicas=2")
        await eventually(lambda: _all_ready(c, ns, 2))
        await eventually(lambda: _status_when(c, ns, "sc", readyReplicas=2))
    out = await _kubectl(plane, ns, "get", "sts", "sc")
    assert "2/2" in out


# -- helpers -----------------------------------------------------------------------------------

def _image(pod: Obj) -> str:
    return str(pod["spec"]["containers"][0]["image"])


async def _kubectl(plane: RunningServer, ns: str, *args: str) -> str:
    """kubectl, run without blocking the loop (the test's node agent keeps working)."""
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


async def _get_pod(c: Client, ns: str, name: str) -> Obj | None:
    try:
        return await c.get(PODS, name, ns)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


async def _all_ready(c: Client, ns: str, n: int) -> bool:
    pods = await live_pods(c, ns)
    return len(pods) == n and all(is_ready(p) for p in pods.values())


async def _names_are(c: Client, ns: str, names: set[str]) -> bool:
    return set(await pods_of(c, ns)) == names


async def _status_when(c: Client, ns: str, name: str, **want: Any) -> Obj | None:
    st = await status_of(c, ns, name)
    return st if all(st.get(k, 0) == v for k, v in want.items()) else None


async def _replaced(c: Client, ns: str, name: str, old_uid: str) -> Obj | None:
    pod = await _get_pod(c, ns, name)
    return pod if pod is not None and pod["metadata"]["uid"] != old_uid else None



async def test_with_scheduler_and_hollow_nodes(tmp_path: Path, namespace: str) -> None:
    """The real scheduler places the pods and hollow nodes run them; a rolling update and
    `kubectl rollout status` go through end to end."""
    plane = start_server(tmp_path / "plane", options=ControlPlaneOptions(
        controllers=["statefulset"], scheduler=True, lease_duration=6.0))
    try:
        async with Client.from_kubeconfig(plane.kubeconfig) as c:
            await c.create(NAMESPACES, {"metadata": {"name": namespace}})
            hollow = HollowCluster(c, 2, name_prefix=f"s{namespace[2:8]}", pod_runtime=0)
            await hollow.start()
            try:
                await c.create(STS, statefulset("web", 3), namespace)
                out = await _kubectl(plane, namespace, "rollout", "status", "sts/web", "--timeout=30s")
                assert "roll out complete" in out
                await c.patch(STS, "web", {"spec": {"template": {"spec": {"containers": [
                    {"name": "c", "image": "nginx:2"}]}}}}, namespace)
                out = await _kubectl(plane, namespace, "rollout", "status", "sts/web", "--timeout=30s")
                assert "roll out complete" in out
                pods = await live_pods(c, namespace)
                assert sorted(pods) == ["web-0", "web-1", "web-2"]
                assert {_image(p) for p in pods.values()} == {"nginx:2"}
                assert {p["spec"]["nodeName"] for p in pods.values()} <= set(hollow.names)
            finally:
                await hollow.stop()
                await hollow.delete_nodes()
    finally:
        plane.stop()
