"""ReplicaSet controller against a real API server: pods converge on spec.replicas, orphans
are adopted, relabelled pods released, surplus pods die in Kubernetes' order, and a pod
template the API refuses produces FailedCreate events with back-off instead of a hot loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served, start_server
from tests.integration.helpers import client_in, eventually, is_ready

from bosun.client.errors import ApiError
from bosun.client.informer import Informer
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource

PODS = resource("", "v1", "pods")
NAMESPACES = resource("", "v1", "namespaces")
EVENTS = resource("", "v1", "events")
RS = resource("apps", "v1", "replicasets")
Obj = dict[str, Any]


class PodReadier:
    """Plays the node agent: marks every pod of a namespace Running and Ready as soon as it
    appears, unless ``hold`` says to leave it Pending."""

    def __init__(self, client: Client, namespace: str, hold: Callable[[Obj], bool] | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.hold = hold or (lambda _p: False)
        self.informer = Informer(client, PODS, namespace)
        self.informer.add_handler(self._seen, lambda _o, n: self._seen(n))
        self._tasks: set[asyncio.Task[None]] = set()

    def _seen(self, pod: Obj) -> None:
        if is_ready(pod) or pod["metadata"].get("deletionTimestamp") or self.hold(pod):
            return
        task = asyncio.create_task(mark_ready(self.client, pod))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def recheck(self) -> None:
        """Look at every pod again (after ``hold`` changed its mind)."""
        for pod in self.informer.list():
            self._seen(pod)

    async def start(self) -> None:
        await self.informer.start()
        await self.informer.wait_synced(10)

    async def stop(self) -> None:
        await self.informer.stop()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def mark_ready(client: Client, pod: Obj) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": stamp}]}
    for _ in range(10):
        try:
            await client.patch(PODS, pod["metadata"]["name"], {"status": status}, pod["metadata"]["namespace"],
                               subresource="status")
            return
        except ApiError as exc:
            if exc.status == 404:
                return
            if exc.status != 409:
                raise
        await asyncio.sleep(0.02)


async def patch_retry(c: Client, *args: Any, **kw: Any) -> Obj:
    """PATCH, retried on 409: the API answers Conflict to a patch that races a controller's
    write instead of re-applying it (reported to the lead; Kubernetes retries internally)."""
    for _ in range(20):
        try:
            result: Obj = await c.patch(*args, **kw)
            return result
        except ApiError as exc:
            if exc.status != 409:
                raise
        await asyncio.sleep(0.05)
    raise AssertionError("patch kept conflicting")


def active(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def replicaset(name: str, replicas: int, labels: dict[str, str], **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, **spec}}


def bare_pod(name: str, labels: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A control plane running only the ReplicaSet controller (no scheduler)."""
    yield from served(tmp_path_factory.mktemp("rs"), options=ControlPlaneOptions(
        controllers=["replicaset"], scheduler=False, lease_duration=3.0))


@contextlib.asynccontextmanager
async def readied_namespace(plane: RunningServer, namespace: str) -> AsyncIterator[tuple[Client, str, PodReadier]]:
    """A client, ``namespace`` (deleted afterwards) and a PodReadier running in it."""
    async with client_in(plane, namespace, delete=True) as c:
        readier = PodReadier(c, namespace)
        await readier.start()
        try:
            yield c, namespace, readier
        finally:
            await readier.stop()


@pytest.fixture
async def env(plane: RunningServer, namespace: str) -> AsyncIterator[tuple[Client, str, PodReadier]]:
    async with readied_namespace(plane, namespace) as env:
        yield env


async def owned_pods(c: Client, ns: str, rs_name: str) -> list[Obj]:
    pods = (await c.list(PODS, ns))["items"]
    return [p for p in active(pods)
            if any(r.get("controller") and r["name"] == rs_name for r in p["metadata"].get("ownerReferences") or [])]


async def wait_status(c: Client, ns: str, name: str, **want: int) -> Obj:
    async def check() -> Obj | None:
        rs = await c.get(RS, name, ns)
        st = rs.get("status") or {}
        ok = all(st.get(k, 0) == v for k, v in want.items())
        ok = ok and st.get("observedGeneration") == rs["metadata"]["generation"]
        return rs if ok else None
    result: Obj = await eventually(check, what=f"status {want}")
    return result


async def test_replicas_converge_and_status_counts(env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    await c.create(RS, replicaset("web", 5, {"app": "web"}), ns)
    await wait_status(c, ns, "web", replicas=5, readyReplicas=5, availableReplicas=5, fullyLabeledReplicas=5)
    assert len(await owned_pods(c, ns, "web")) == 5
    # a deleted pod is replaced
    victim = (await owned_pods(c, ns, "web"))[0]
    await c.delete(PODS, victim["metadata"]["name"], ns)

    async def replaced() -> bool:
        names = {p["metadata"]["name"] for p in await owned_pods(c, ns, "web")}
        return victim["metadata"]["name"] not in names and len(names) == 5
    await eventually(replaced, what="replacement pod")
    await wait_status(c, ns, "web", replicas=5, readyReplicas=5)
    # scale to zero via the scale subresource
    await patch_retry(c, RS, "web", {"spec": {"replicas": 0}}, ns, subresource="scale")
    await wait_status(c, ns, "web", replicas=0)
    assert await owned_pods(c, ns, "web") == []
    evs = (await c.list(EVENTS, ns, field_selector="involvedObject.name=web"))["items"]
    assert {"SuccessfulCreate", "SuccessfulDelete"} <= {e["reason"] for e in evs}


async def test_no_duplicates_when_scaled_up_in_one_go(env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    await c.create(RS, replicaset("burst", 40, {"app": "burst"}), ns)
    await wait_status(c, ns, "burst", replicas=40, readyReplicas=40)
    await asyncio.sleep(0.5)  # any duplicate created by a stale cache would show up now
    assert len(await owned_pods(c, ns, "burst")) == 40


async def test_orphans_are_adopted_and_relabelled_pods_released(env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    for i in range(2):
        await c.create(PODS, bare_pod(f"orphan-{i}", {"app": "adopt"}), ns)
    await c.create(RS, replicaset("adopt", 3, {"app": "adopt"}), ns)
    await wait_status(c, ns, "adopt", replicas=3, readyReplicas=3)
    pods = await owned_pods(c, ns, "adopt")
    assert {"orphan-0", "orphan-1"} <= {p["metadata"]["name"] for p in pods}
    assert len(pods) == 3
    # relabel one: it is released (no owner) and replaced
    await patch_retry(c, PODS, "orphan-0", {"metadata": {"labels": {"app": "other"}}}, ns)

    async def released() -> bool:
        pod = await c.get(PODS, "orphan-0", ns)
        return not pod["metadata"].get("ownerReferences")
    await eventually(released, what="release")

    async def replaced() -> set[str] | None:
        # The status may still count the released pod for a moment: look at the pods.
        names = {p["metadata"]["name"] for p in await owned_pods(c, ns, "adopt")}
        return names if len(names) == 3 else None
    names = await eventually(replaced, what="a replacement for the released pod")
    assert "orphan-0" not in names
    await wait_status(c, ns, "adopt", replicas=3, readyReplicas=3)
    assert (await c.get(PODS, "orphan-0", ns))["metadata"].get("deletionTimestamp") is None


async def test_scale_down_deletes_unready_then_youngest(env: tuple[Client, str, PodReadier]) -> None:
    c, ns, readier = env
    await c.create(RS, replicaset("order", 3, {"app": "order"}), ns)
    await wait_status(c, ns, "order", replicas=3, readyReplicas=3)
    first = {p["metadata"]["name"] for p in await owned_pods(c, ns, "order")}
    # two new pods that stay Pending, one more that becomes ready later (the youngest ready)
    readier.hold = lambda p: p["metadata"].get("labels", {}).get("hold") == "yes"
    await c.create(PODS, bare_pod("pending-a", {"app": "order", "hold": "yes"}), ns)
    await c.create(PODS, bare_pod("pending-b", {"app": "order", "hold": "yes"}), ns)
    await asyncio.sleep(1.1)  # readiness timestamps have second precision
    await c.create(PODS, bare_pod("young", {"app": "order"}), ns)

    async def young_gone() -> bool:
        return "young" not in {p["metadata"]["name"] for p in active((await c.list(PODS, ns))["items"])}
    await eventually(young_gone, what="surplus pod deleted")
    # the surplus three were the two pending pods and the youngest one
    assert {p["metadata"]["name"] for p in await owned_pods(c, ns, "order")} == first
    await wait_status(c, ns, "order", replicas=3, readyReplicas=3)


async def test_min_ready_seconds_delays_availability(env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    await c.create(RS, replicaset("slow", 2, {"app": "slow"}, minReadySeconds=2), ns)
    rs = await wait_status(c, ns, "slow", replicas=2, readyReplicas=2)
    assert rs["status"].get("availableReplicas", 0) == 0
    await wait_status(c, ns, "slow", availableReplicas=2)


async def test_refused_template_records_failed_create_with_back_off(env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    body = replicaset("bad", 2, {"app": "bad"})
    # Template metadata accepts any finalizer; a pod refuses one that is not a qualified name.
    body["spec"]["template"]["metadata"]["finalizers"] = ["not a finalizer"]
    await c.create(RS, body, ns)

    async def failed() -> list[Obj]:
        evs = (await c.list(EVENTS, ns, field_selector="involvedObject.name=bad"))["items"]
        return [e for e in evs if e["reason"] == "FailedCreate"]
    evs = await eventually(failed, what="FailedCreate event")
    assert evs[0]["type"] == "Warning" and "finalizers" in evs[0]["message"]
    assert evs[0]["message"].startswith("Error creating: ")
    rs = await c.get(RS, "bad", ns)
    cond = [x for x in rs["status"].get("conditions") or [] if x["type"] == "ReplicaFailure"]
    assert cond and cond[0]["reason"] == "FailedCreate"
    # back-off: a few seconds of failing is a handful of attempts, not hundreds
    await asyncio.sleep(3)
    count = sum(e.get("count", 1) for e in await failed())
    assert 2 <= count <= 14, count
    # fixing the template lets the ReplicaSet recover
    fix = [{"op": "remove", "path": "/spec/template/metadata/finalizers"}]
    await patch_retry(c, RS, "bad", fix, ns, patch_type="json")
    rs = await wait_status(c, ns, "bad", replicas=2, readyReplicas=2)
    assert not [x for x in rs["status"].get("conditions") or [] if x["type"] == "ReplicaFailure"]


async def test_restart_does_not_duplicate(tmp_path: Path, namespace: str) -> None:
    opts = ControlPlaneOptions(controllers=["replicaset"], scheduler=False, lease_duration=3.0)
    running = start_server(tmp_path / "data", options=opts)
    try:
        async with Client.from_kubeconfig(running.kubeconfig) as c:
            await c.create(NAMESPACES, {"metadata": {"name": namespace}})
            await c.create(RS, replicaset("r", 6, {"app": "r"}), namespace)
            await wait_status(c, namespace, "r", replicas=6)
    finally:
        running.stop()
    running = start_server(tmp_path / "data", options=opts)
    try:
        async with Client.from_kubeconfig(running.kubeconfig) as c:
            await patch_retry(c, RS, "r", {"spec": {"replicas": 8}}, namespace)
            await wait_status(c, namespace, "r", replicas=8)
            await asyncio.sleep(0.5)
            assert len(await owned_pods(c, namespace, "r")) == 8
    finally:
        running.stop()
