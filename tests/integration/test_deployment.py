"""Deployment controller with the ReplicaSet controller against a real API server, driven by
real kubectl where users would: rollouts stay within maxSurge/maxUnavailable at every pod
event, Recreate never overlaps, rollout undo/history/pause/resume/restart/status and scale
behave as on Kubernetes, history is trimmed, a stalled rollout hits its progress deadline,
and a control plane restarted mid-rollout carries on."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served, start_server
from tests.integration.helpers import eventually
from tests.integration.test_replicaset import (
    EVENTS,
    NAMESPACES,
    PODS,
    RS,
    PodReadier,
    active,
    patch_retry,
    readied_namespace,
)

from bosun.client.informer import Informer
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers._common import resource

DEPLOY = resource("apps", "v1", "deployments")
Obj = dict[str, Any]
OPTIONS = ControlPlaneOptions(controllers=["replicaset", "deployment"], scheduler=False, lease_duration=3.0)


def kubectl(server: RunningServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/usr/bin/kubectl", "--kubeconfig", server.kubeconfig, *args],
                          capture_output=True, text=True, check=check, timeout=40)


async def akubectl(server: RunningServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """kubectl in a thread: the API server and the test share no loop, but the test's own
    informers must keep running while kubectl waits (rollout status)."""
    return await asyncio.to_thread(kubectl, server, *args, check=check)


def deployment(name: str, replicas: int, image: str = "nginx:1", **spec: Any) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("deploy"), options=OPTIONS)


@pytest.fixture
async def env(plane: RunningServer, namespace: str) -> AsyncIterator[tuple[Client, str, PodReadier]]:
    async with readied_namespace(plane, namespace) as env:
        yield env


async def rollout_done(c: Client, ns: str, name: str, wait: float = 20) -> Obj:
    async def check() -> Obj | None:
        d = await c.get(DEPLOY, name, ns)
        st, want = d.get("status") or {}, d["spec"]["replicas"]
        ok = (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("updatedReplicas") == want
              and st.get("replicas") == want and st.get("availableReplicas") == want)
        return d if ok else None
    result: Obj = await eventually(check, wait, f"rollout of {name}")
    return result


async def replicasets(c: Client, ns: str) -> list[Obj]:
    items: list[Obj] = (await c.list(RS, ns))["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"].get("annotations", {}).get(
        "deployment.kubernetes.io/revision", 0)))


class PodWatch:
    """Every pod event of a namespace, with the pod counts at that instant."""

    def __init__(self, c: Client, ns: str) -> None:
        self.inf = Informer(c, PODS, ns)
        self.samples: list[tuple[int, int, set[str]]] = []  # (existing, ready, template hashes)
        self.inf.add_handler(lambda _p: self._sample(), lambda _o, _n: self._sample(), lambda _p: self._sample())

    def _sample(self) -> None:
        pods = active(self.inf.list())
        ready = [p for p in pods if any(x["type"] == "Ready" and x["status"] == "True"
                                        for x in (p.get("status") or {}).get("conditions") or [])]
        hashes = {p["metadata"]["labels"].get("pod-template-hash", "") for p in pods}
        self.samples.append((len(pods), len(ready), hashes))

    async def __aenter__(self) -> PodWatch:
        await self.inf.start()
        await self.inf.wait_synced(10)
        self.samples.clear()  # the initial list arrives one add at a time: not real states
        self._sample()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inf.stop()


async def test_create_rollout_and_status(plane: RunningServer, env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    body = deployment("web", 3)
    body["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first"}
    await c.create(DEPLOY, body, ns)
    out = await akubectl(plane, "-n", ns, "rollout", "status", "deployment/web", "--timeout=20s")
    assert 'deployment "web" successfully rolled out' in out.stdout
    d = await rollout_done(c, ns, "web")
    conds = {x["type"]: x for x in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True" and conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    [rs] = await replicasets(c, ns)
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == h
    ann = rs["metadata"]["annotations"]
    assert ann["deployment.kubernetes.io/revision"] == "1"
    assert ann["deployment.kubernetes.io/desired-replicas"] == "3"
    assert ann["deployment.kubernetes.io/max-replicas"] == "4"  # 3 + ceil(25% of 3)
    assert ann["kubernetes.io/change-cause"] == "first"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    evs = (await c.list(EVENTS, ns, field_selector="involvedObject.name=web"))["items"]
    assert any(e["reason"] == "ScalingReplicaSet" and e["message"] == f"Scaled up replica set web-{h} to 3"
               for e in evs)
    # kubectl scale through the scale subresource
    await akubectl(plane, "-n", ns, "scale", "deployment/web", "--replicas=5")
    await rollout_done(c, ns, "web")
    assert len(active((await c.list(PODS, ns))["items"])) == 5
    # nothing is left behind by `kubectl delete deployment`
    await akubectl(plane, "-n", ns, "delete", "deployment", "web")

    async def gone() -> bool:
        return not (await c.list(PODS, ns))["items"] and not (await c.list(RS, ns))["items"]
    await eventually(gone, what="ReplicaSets and pods deleted with the Deployment")


@pytest.mark.parametrize(("surge", "unavailable", "replicas"), [(1, 0, 4), ("0%", "50%", 4), ("25%", "25%", 6)])
async def test_rolling_update_respects_surge_and_unavailable(
    plane: RunningServer, env: tuple[Client, str, PodReadier], surge: Any, unavailable: Any, replicas: int,
) -> None:
    c, ns, _ = env
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    await c.create(DEPLOY, deployment("roll", replicas, strategy=strategy), ns)
    await rollout_done(c, ns, "roll")
    d = await c.get(DEPLOY, "roll", ns)
    from bosun.controllers.deployment_util import resolve_fenceposts
    max_surge, max_unav = resolve_fenceposts(d)
    async with PodWatch(c, ns) as watch:
        await akubectl(plane, "-n", ns, "set", "image", "deployment/roll", "c=nginx:2")
        await akubectl(plane, "-n", ns, "rollout", "status", "deployment/roll", "--timeout=30s")
        await rollout_done(c, ns, "roll")
    assert watch.samples
    for existing, ready, _ in watch.samples:
        assert existing <= replicas + max_surge, watch.samples
        assert ready >= replicas - max_unav, watch.samples
    rses = await replicasets(c, ns)
    assert [int(rs["spec"]["replicas"]) for rs in rses] == [0, replicas]


async def test_recreate_never_overlaps(plane: RunningServer, env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    await c.create(DEPLOY, deployment("rec", 3, strategy={"type": "Recreate"}), ns)
    await rollout_done(c, ns, "rec")
    async with PodWatch(c, ns) as watch:
        await akubectl(plane, "-n", ns, "set", "image", "deployment/rec", "c=nginx:2")
        await rollout_done(c, ns, "rec")
    assert all(len(hashes) <= 1 for _, _, hashes in watch.samples), watch.samples
    assert any(existing == 0 for existing, _, _ in watch.samples)


async def test_undo_history_and_revision_limit(plane: RunningServer, env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    await c.create(DEPLOY, deployment("hist", 2, revisionHistoryLimit=2), ns)
    await rollout_done(c, ns, "hist")
    for tag in ("2", "3", "4"):
        await akubectl(plane, "-n", ns, "set", "image", "deployment/hist", f"c=nginx:{tag}")
        await rollout_done(c, ns, "hist")
    async def trimmed() -> bool:
        return len(await replicasets(c, ns)) == 3  # current + 2 in history
    await eventually(trimmed, what="history trimmed to revisionHistoryLimit")
    out = (await akubectl(plane, "-n", ns, "rollout", "history", "deployment/hist")).stdout
    assert [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["2", "3", "4"]
    # undo to the previous revision reuses its ReplicaSet and gives it the next revision
    rses = await replicasets(c, ns)
    prev = next(rs for rs in rses if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3")
    await akubectl(plane, "-n", ns, "rollout", "undo", "deployment/hist")
    await rollout_done(c, ns, "hist")

    async def reused() -> bool:
        rs = await c.get(RS, prev["metadata"]["name"], ns)
        return bool(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "5"
                    and rs["spec"]["replicas"] == 2)
    await eventually(reused, what="old ReplicaSet reused as revision 5")
    d = await c.get(DEPLOY, "hist", ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:3"
    # undo --to-revision
    await akubectl(plane, "-n", ns, "rollout", "undo", "deployment/hist", "--to-revision=4")
    await rollout_done(c, ns, "hist")
    d = await c.get(DEPLOY, "hist", ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:4"
    out = (await akubectl(plane, "-n", ns, "rollout", "history", "deployment/hist")).stdout
    assert [line.split()[0] for line in out.splitlines()[2:] if line.strip()] == ["2", "5", "6"]


async def test_pause_resume_and_restart(plane: RunningServer, env: tuple[Client, str, PodReadier]) -> None:
    c, ns, _ = env
    await c.create(DEPLOY, deployment("pz", 2), ns)
    await rollout_done(c, ns, "pz")
    await akubectl(plane, "-n", ns, "rollout", "pause", "deployment/pz")
    await akubectl(plane, "-n", ns, "set", "image", "deployment/pz", "c=nginx:2")

    async def paused() -> bool:
        d = await c.get(DEPLOY, "pz", ns)
        cond = {x["type"]: x for x in (d.get("status") or {}).get("conditions") or []}.get("Progressing") or {}
        return cond.get("reason") == "DeploymentPaused" and cond.get("status") == "Unknown"
    await eventually(paused, what="DeploymentPaused")
    await asyncio.sleep(0.5)
    assert len(await replicasets(c, ns)) == 1  # no rollout while paused
    await akubectl(plane, "-n", ns, "rollout", "resume", "deployment/pz")
    await akubectl(plane, "-n", ns, "rollout", "status", "deployment/pz", "--timeout=20s")
    await rollout_done(c, ns, "pz")
    assert len(await replicasets(c, ns)) == 2
    await akubectl(plane, "-n", ns, "rollout", "restart", "deployment/pz")
    await akubectl(plane, "-n", ns, "rollout", "status", "deployment/pz", "--timeout=20s")
    rses = await replicasets(c, ns)
    assert len(rses) == 3 and [rs["spec"]["replicas"] for rs in rses] == [0, 0, 2]
    assert "kubectl.kubernetes.io/restartedAt" in rses[-1]["spec"]["template"]["metadata"]["annotations"]


async def test_progress_deadline_exceeded(plane: RunningServer, env: tuple[Client, str, PodReadier]) -> None:
    c, ns, readier = env
    readier.hold = lambda p: p["spec"]["containers"][0]["image"] == "nginx:broken"
    await c.create(DEPLOY, deployment("stall", 2, progressDeadlineSeconds=2), ns)
    await rollout_done(c, ns, "stall")
    await akubectl(plane, "-n", ns, "set", "image", "deployment/stall", "c=nginx:broken")

    async def timed_out() -> Obj | None:
        d = await c.get(DEPLOY, "stall", ns)
        cond = {x["type"]: x for x in (d.get("status") or {}).get("conditions") or []}.get("Progressing") or {}
        return cond if cond.get("reason") == "ProgressDeadlineExceeded" else None
    cond = await eventually(timed_out, 15, "ProgressDeadlineExceeded")
    assert cond["status"] == "False"
    out = await akubectl(plane, "-n", ns, "rollout", "status", "deployment/stall", "--timeout=10s", check=False)
    assert out.returncode != 0 and "exceeded its progress deadline" in out.stderr
    # the old pods kept serving: maxUnavailable 25% of 2 rounds down to 0
    d = await c.get(DEPLOY, "stall", ns)
    assert d["status"]["availableReplicas"] == 2


async def test_restart_mid_rollout_continues(tmp_path: Path, namespace: str) -> None:
    data = tmp_path / "data"
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    running = start_server(data, options=OPTIONS)
    try:
        async with Client.from_kubeconfig(running.kubeconfig) as c:
            await c.create(NAMESPACES, {"metadata": {"name": namespace}})
            readier = PodReadier(c, namespace, hold=lambda p: p["spec"]["containers"][0]["image"] == "nginx:2")
            await readier.start()
            try:
                await c.create(DEPLOY, deployment("mid", 4, strategy=strategy), namespace)
                await rollout_done(c, namespace, "mid")
                await patch_retry(c, DEPLOY, "mid", {"spec": {"template": {"spec": {"containers": [
                    {"name": "c", "image": "nginx:2"}]}}}}, namespace, patch_type="strategic")

                async def surged() -> bool:
                    return len(await replicasets(c, namespace)) == 2 and \
                        len(active((await c.list(PODS, namespace))["items"])) == 5
                await eventually(surged, what="first surge pod")
            finally:
                await readier.stop()
    finally:
        running.stop()
    running = start_server(data, options=OPTIONS)
    try:
        async with Client.from_kubeconfig(running.kubeconfig) as c:
            async with PodWatch(c, namespace) as watch:
                readier = PodReadier(c, namespace)
                await readier.start()
                try:
                    await rollout_done(c, namespace, "mid")
                finally:
                    await readier.stop()
            for existing, ready, _ in watch.samples:
                assert existing <= 5 and ready >= 4, watch.samples
            rses = await replicasets(c, namespace)
            assert [rs["spec"]["replicas"] for rs in rses] == [0, 4]
    finally:
        running.stop()


async def test_scale_during_rollout_is_proportional(plane: RunningServer, env: tuple[Client, str, PodReadier]) -> None:
    c, ns, readier = env
    readier.hold = lambda p: p["spec"]["containers"][0]["image"] == "nginx:held"
    await c.create(DEPLOY, deployment("prop", 10), ns)
    await rollout_done(c, ns, "prop")
    await akubectl(plane, "-n", ns, "set", "image", "deployment/prop", "c=nginx:held")

    async def stuck() -> list[int] | None:
        sizes = [int(rs["spec"]["replicas"]) for rs in await replicasets(c, ns)]
        return sizes if sizes == [8, 5] else None  # 10 - 2 unavailable; 10 + 3 surge - 8
    await eventually(stuck, what="rollout stalled at maxSurge/maxUnavailable")
    await akubectl(plane, "-n", ns, "scale", "deployment/prop", "--replicas=20")

    async def scaled() -> list[int] | None:
        sizes = [int(rs["spec"]["replicas"]) for rs in await replicasets(c, ns)]
        return sizes if sum(sizes) == 25 else None  # 20 + ceil(25% of 20)
    old, new = await eventually(scaled, what="proportional scale-up")
    assert old > 8 and new > 5, (old, new)
