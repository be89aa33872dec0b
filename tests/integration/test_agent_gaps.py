"""The node agent's remaining gaps (issue 5): podCIDR, ImagePullBackOff, emptyDir limits,
local-path PersistentVolumeClaims, log rotation, and an API server outage."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import (
    agent_config,
    client_for,
    create_namespace,
    create_pod,
    eventually,
    is_ready,
    node_name,
    pod_when,
)
from tests.integration.oci_env import wait_for

from bosun.agent.agent import Agent
from bosun.agent.config import AgentConfig
from bosun.agent.runtime.base import RuntimeDriver
from bosun.agent.runtime.process import ProcessDriver
from bosun.api.registry import Resource
from bosun.client.rest import Client
from bosun.controllers._common import resource

pytestmark = pytest.mark.timeout(120)


PODS, NAMESPACES, NODES, EVENTS = (resource("", "v1", p) for p in ("pods", "namespaces", "nodes", "events"))
PVCS, PVS = resource("", "v1", "persistentvolumeclaims"), resource("", "v1", "persistentvolumes")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from served(tmp_path_factory.mktemp("gaps-server"))


@contextlib.asynccontextmanager
async def process_agent(client: Client, config: AgentConfig) -> AsyncIterator[Agent]:
    driver = ProcessDriver(config.runtime_dir / "process", "127.0.0.1")
    agent = Agent(client, config, driver, node_ip="127.0.0.1")
    try:
        await agent.start()
        yield agent
    finally:
        await agent.stop()
        await _remove_all(driver)


async def _remove_all(driver: RuntimeDriver) -> None:
    for c in await driver.list_containers():
        with contextlib.suppress(Exception):
            await driver.stop_container(c.id, 0)
        await driver.remove_container(c.id)
    for sb in await driver.list_sandboxes():
        with contextlib.suppress(Exception):
            await driver.stop_sandbox(sb.id)
            await driver.remove_sandbox(sb.id)


# Agents and servers restart under these tests: a failed read only means "not yet".
until = functools.partial(pod_when, tolerate_errors=True)


async def gone(client: Client, ns: str) -> bool:
    return not (await client.list(PODS, ns))["items"]


async def events_of(client: Client, ns: str, name: str) -> list[tuple[str, str]]:
    items = (await client.list(EVENTS, ns))["items"]
    return [(e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


# -- 1. podCIDR ---------------------------------------------------------------------------------

async def test_explicit_pod_cidr_is_set_on_the_node_and_kept(server: RunningServer, tmp_path: Path) -> None:
    """``--pod-cidr`` on a bare API server (no IPAM controller): the agent sets it on its own
    Node; restarted with another value, the Node keeps the first (podCIDR never changes)."""
    client = client_for(server)
    first = node_name(tmp_path, "cidr-a")
    try:
        async with process_agent(client, agent_config(tmp_path / "a", first, pod_cidr="10.77.0.0/16")) as a:
            node = await client.get(NODES, first)
            assert node["spec"]["podCIDR"] == "10.77.0.0/16" == a.pod_cidr
            assert node["spec"]["podCIDRs"] == ["10.77.0.0/16"]
        async with process_agent(client, agent_config(tmp_path / "a", first, pod_cidr="10.78.0.0/16")) as a:
            assert a.pod_cidr == "10.77.0.0/16"
    finally:
        await client.close()


async def test_agent_without_pod_cidr_waits_not_ready(server: RunningServer, tmp_path: Path) -> None:
    """Without ``--pod-cidr`` the agent starts no pod before its Node has a podCIDR, and says
    so as Ready=False; once it is set (here by hand, as the IPAM controller would), it goes on."""
    client = client_for(server)
    name = node_name(tmp_path, "wait")
    config = agent_config(tmp_path / "w", name, pod_cidr="")
    agent = Agent(client, config, ProcessDriver(config.runtime_dir / "process", "127.0.0.1"), node_ip="127.0.0.1")
    starting = asyncio.create_task(agent.start())
    try:
        async def not_ready() -> dict[str, Any] | None:
            with contextlib.suppress(Exception):
                for c in (await client.get(NODES, name))["status"]["conditions"]:
                    if c["type"] == "Ready" and c["status"] == "False":
                        return dict(c)
            return None

        cond = await eventually(not_ready, what="the node to say NotReady")
        assert "podCIDR" in cond["message"] and "IPAM" in cond["message"]
        assert not starting.done()
        await client.patch(NODES, name, {"spec": {"podCIDR": "10.79.3.0/24", "podCIDRs": ["10.79.3.0/24"]}})
        await asyncio.wait_for(starting, 15)
        assert agent.pod_cidr == "10.79.3.0/24"
        await eventually(lambda: _ready(client, name), what="Ready")
    finally:
        starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        await agent.stop()
        await client.close()


async def _ready(client: Client, name: str) -> bool:
    conds = (await client.get(NODES, name))["status"]["conditions"]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


# -- 2. ImagePullBackOff (the oci driver: the process driver has no images to pull) -------------

@contextlib.asynccontextmanager
async def oci_agent(client: Client, config: AgentConfig) -> AsyncIterator[Agent]:
    from tests.integration.oci_env import oci_env

    async with oci_env() as env:
        agent = Agent(client, dataclasses.replace(config, pod_cidr=env.subnet), env.driver, node_ip="127.0.0.1")
        try:
            await agent.start()
            yield agent
        finally:
            await agent.stop()


def _requires_oci() -> pytest.MarkDecorator:
    from tests.integration.oci_env import requires_oci

    return requires_oci


@_requires_oci()
async def test_missing_image_backs_off(server: RunningServer, tmp_path: Path, namespace: str) -> None:
    client = client_for(server)
    name = node_name(tmp_path, "pull")
    try:
        async with oci_agent(client, agent_config(tmp_path / "a", name, image_backoff_base=1.0,
                                                  image_backoff_max=2.0)):
            await create_namespace(client, namespace)
            image = "127.0.0.1:1/nope:1"
            await create_pod(client, namespace, name, "nopull", [{"name": "c", "image": image}])

            def waiting(pod: dict[str, Any]) -> dict[str, Any]:
                sts = pod.get("status", {}).get("containerStatuses") or [{}]
                return dict(sts[0].get("state", {}).get("waiting") or {})

            pod = await until(client, namespace, "nopull", lambda p: waiting(p).get("reason") == "ImagePullBackOff")
            msg = waiting(pod)["message"]
            assert msg.startswith(f'Back-off pulling image "{image}": ErrImagePull: ') and "127.0.0.1:1" in msg
            assert pod["status"]["phase"] == "Pending"
            # The pull is retried (1 s, then 2 s), each failure showing ErrImagePull again.
            deadline = time.monotonic() + 15
            pulls = 0
            while time.monotonic() < deadline:
                items = (await client.list(EVENTS, namespace))["items"]
                pulls = sum(e.get("count", 1) for e in items
                            if e["reason"] == "Failed" and e["message"].startswith(f'Failed to pull image "{image}"'))
                if pulls >= 3:
                    break
                await asyncio.sleep(0.2)
            assert pulls >= 3
            seen = await events_of(client, namespace, "nopull")
            assert ("Failed", "Error: ErrImagePull") in seen
            assert ("Failed", "Error: ImagePullBackOff") in seen
            assert ("BackOff", f'Back-off pulling image "{image}"') in seen
    finally:
        await client.close()


# -- 3. emptyDir: sizeLimit eviction, medium Memory as tmpfs -------------------------------------

def container_log(agent: Agent, uid: str, container: str) -> str:
    path = agent.config.pods_dir / uid / "logs" / container / "0.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return "\n".join(line.split(" ", 3)[3] for line in lines if line.count(" ") >= 3)


async def test_emptydir_over_its_size_limit_evicts_the_pod(server: RunningServer, tmp_path: Path,
                                                          namespace: str) -> None:
    client = client_for(server)
    name = node_name(tmp_path, "evict")
    try:
        async with process_agent(client, agent_config(tmp_path / "a", name, housekeeping_interval=0.3)) as agent:
            await create_namespace(client, namespace)
            # The process driver mounts nothing: the command writes where the volume lives.
            await create_pod(client, namespace, name, "hog", [{
                "name": "c", "command": ["sh", "-c", 'D="$PODS/$UID/volumes/emptyDir/scratch"; sleep 1; '
                                         'head -c 3000000 /dev/zero > "$D/big"; exec sleep 60'],
                "env": [{"name": "PODS", "value": str(agent.config.pods_dir)},
                        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
                volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}])
            await create_pod(client, namespace, name, "modest", [{
                "name": "c", "command": ["sleep", "60"], "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
                volumes=[{"name": "s", "emptyDir": {"sizeLimit": "1Mi"}}])
            pod = await until(client, namespace, "hog", lambda p: p["status"].get("phase") == "Failed")
            assert pod["status"]["reason"] == "Evicted"
            assert pod["status"]["message"] == 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".'
            state = pod["status"]["containerStatuses"][0]["state"]
            assert "terminated" in state, state
            assert not is_ready(pod)
            assert ("Evicted", pod["status"]["message"]) in await events_of(client, namespace, "hog")
            modest = await client.get(PODS, "modest", namespace)
            assert modest["status"]["phase"] == "Running"
            # Still Failed a while later (an evicted pod is not restarted in place).
            await asyncio.sleep(1.0)
            assert (await client.get(PODS, "hog", namespace))["status"]["phase"] == "Failed"
    finally:
        await client.close()


@_requires_oci()
async def test_memory_emptydir_is_a_sized_tmpfs(server: RunningServer, tmp_path: Path, namespace: str) -> None:
    from bosun.agent.runtime.oci_mounts import mounts_under

    client = client_for(server)
    name = node_name(tmp_path, "tmpfs")
    try:
        async with oci_agent(client, agent_config(tmp_path / "a", name)) as agent:
            await create_namespace(client, namespace)
            script = ('grep -E " /(cache|big) " /proc/mounts; head -c 4000000 /dev/zero > /cache/f; '
                      'echo "rc=$?"; exec sleep 60')
            pod = await create_pod(client, namespace, name, "mem", [{
                "name": "c", "command": ["sh", "-c", script],
                "resources": {"limits": {"memory": "64Mi"}},
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "big", "mountPath": "/big"}]}],
                volumes=[{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}},
                         {"name": "big", "emptyDir": {"medium": "Memory"}}])
            uid = pod["metadata"]["uid"]
            await until(client, namespace, "mem", is_ready, within=30)
            await wait_for(lambda: "rc=" in container_log(agent, uid, "c"))
            out = container_log(agent, uid, "c")
            mounts = {line.split()[1]: line.split()[3] for line in out.splitlines() if line.startswith("tmpfs")}
            assert "size=2048k" in mounts["/cache"], out
            assert "size=65536k" in mounts["/big"], out  # the pod's memory limit
            assert "No space left on device" in out and "rc=1" in out
            pod_dir = agent.config.pods_dir / uid
            assert len(mounts_under(pod_dir / "volumes")) == 2
            await client.delete(PODS, "mem", namespace)
            await wait_for(lambda: gone(client, namespace), within=15)
            assert not mounts_under(pod_dir) and not pod_dir.exists()
    finally:
        await client.close()


# -- 4. persistentVolumeClaim volumes from the local-path provisioner -----------------------------

@pytest.fixture(scope="module")
def provisioner_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from bosun.controlplane import ControlPlaneOptions

    yield from served(tmp_path_factory.mktemp("localpath-server"),
                           options=ControlPlaneOptions(controllers=["localpath"], scheduler=False))


async def until_obj(client: Client, res: Resource, name: str, ns: str | None,
                    check: Callable[[dict[str, Any] | None], bool], within: float = 15) -> dict[str, Any] | None:
    async def probe() -> tuple[bool, dict[str, Any] | None]:
        try:
            obj: dict[str, Any] | None = await client.get(res, name, ns)
        except Exception:
            obj = None
        return check(obj), obj

    deadline = time.monotonic() + within
    while True:
        ok, obj = await probe()
        if ok:
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"{res.plural}/{name}: timed out; last: {obj}")
        await asyncio.sleep(0.1)


def _pvc(name: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Mi"}}}}


@_requires_oci()
async def test_local_path_claim_is_provisioned_mounted_and_removed(provisioner_server: RunningServer,
                                                                  tmp_path: Path, namespace: str) -> None:
    client = client_for(provisioner_server)
    name = node_name(tmp_path, "lp")
    try:
        async with oci_agent(client, agent_config(tmp_path / "a", name, housekeeping_interval=0.3)) as agent:
            await create_namespace(client, namespace)
            await client.create(PVCS, _pvc("data"), namespace)
            await asyncio.sleep(0.5)  # WaitForFirstConsumer: nothing happens without a pod
            assert (await client.get(PVCS, "data", namespace))["status"]["phase"] == "Pending"
            claim = {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}
            await create_pod(client, namespace, name, "writer", [{
                "name": "c", "command": ["sh", "-c", "echo hi > /data/f; exec sleep 60"],
                "volumeMounts": [{"name": "d", "mountPath": "/data"}]}], volumes=[claim])
            pvc = await until_obj(client, PVCS, "data", namespace,
                                  lambda o: (o or {}).get("status", {}).get("phase") == "Bound")
            assert pvc is not None
            pv_name = pvc["spec"]["volumeName"]
            assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == name
            pv = await client.get(PVS, pv_name)
            assert pv["status"]["phase"] == "Bound"
            assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
            assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0][
                "values"] == [name]
            volume_dir = Path(pv["spec"]["hostPath"]["path"])
            assert volume_dir == agent.config.volumes_dir.resolve() / pv_name
            await until(client, namespace, "writer", is_ready, within=30)
            await wait_for(lambda: (volume_dir / "f").exists() and (volume_dir / "f").read_text() == "hi\n")
            # The data outlives the pod; a read-only claim cannot write.
            await client.delete(PODS, "writer", namespace)
            await wait_for(lambda: gone(client, namespace), within=15)
            pod = await create_pod(client, namespace, name, "reader", [{
                "name": "c", "command": ["sh", "-c", "cat /data/f; touch /data/x 2>/dev/null || echo ro; "
                                         "exec sleep 60"],
                "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}])
            await wait_for(lambda: "ro" in container_log(agent, pod["metadata"]["uid"], "c"), within=30)
            assert container_log(agent, pod["metadata"]["uid"], "c").split() == ["hi", "ro"]
            await client.delete(PODS, "reader", namespace)
            await wait_for(lambda: gone(client, namespace), within=15)
            # Deleting the claim (reclaimPolicy Delete) deletes the volume and its directory.
            await client.delete(PVCS, "data", namespace)
            await until_obj(client, PVS, pv_name, None, lambda o: o is None)
            await wait_for(lambda: not volume_dir.exists())
            # Immediate binding provisions with no pod, on a Ready node.
            await client.create(PVCS, _pvc("now", **{"bosun.io/volume-binding-mode": "Immediate"}), namespace)
            now = await until_obj(client, PVCS, "now", namespace,
                                  lambda o: (o or {}).get("status", {}).get("phase") == "Bound")
            assert now is not None
            assert now["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == name
            await client.delete(PVCS, "now", namespace)
            await until_obj(client, PVS, now["spec"]["volumeName"], None, lambda o: o is None)
    finally:
        await client.close()


# -- 5. log rotation --------------------------------------------------------------------------------

async def _agent_logs(agent: Agent, token: str, ns: str, pod: str, **params: str) -> str:
    import ssl

    import aiohttp

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    url = f"https://127.0.0.1:{agent.port}/containerLogs/{ns}/{pod}/c"
    async with aiohttp.ClientSession() as s, s.get(url, params=params, ssl=ctx,
                                                   headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return await r.text()


async def test_container_logs_rotate_and_stay_readable(server: RunningServer, tmp_path: Path,
                                                       namespace: str) -> None:
    client = client_for(server)
    name = node_name(tmp_path, "logs")
    script = ('sleep 1; i=0; while [ $i -lt 300 ]; do i=$((i+1)); '
              'echo "line $i ........................................"; '
              '[ $((i % 5)) -eq 0 ] && sleep 0.02; done; sleep 0.3; exit 1')
    try:
        config = agent_config(tmp_path / "a", name, container_log_max_bytes=4096, container_log_max_files=3)
        async with process_agent(client, config) as agent:
            await create_namespace(client, namespace)
            pod = await create_pod(client, namespace, name, "chatty", [{"name": "c", "command": ["sh", "-c", script]}])
            await until(client, namespace, "chatty", lambda p: p["status"].get("phase") == "Running")
            await wait_for(lambda: agent.server.container_running(pod["metadata"]["uid"], "c"))
            followed = await _agent_logs(agent, server.token, namespace, "chatty", follow="true")
            # Following by name crossed every rotation without losing or repeating a line.
            assert followed.splitlines() == [f"line {i} " + "." * 40 for i in range(1, 301)]
            logs_dir = agent.config.pods_dir / pod["metadata"]["uid"] / "logs" / "c"
            rotated = sorted(p.name for p in logs_dir.glob("0.log*"))
            assert rotated == ["0.log", "0.log.1", "0.log.2"]
            assert all(p.stat().st_size < 4096 + 200 for p in logs_dir.glob("0.log*"))
            # After the restart, --previous reads the ended attempt's live file: its last lines.
            await until(client, namespace, "chatty", lambda p: p["status"]["containerStatuses"][0]
                        .get("restartCount", 0) >= 1)
            previous = await _agent_logs(agent, server.token, namespace, "chatty", previous="true")
            assert previous.splitlines()[-1] == "line 300 " + "." * 40
            assert len(previous.splitlines()) < 100  # only the newest file, not the rotated ones
    finally:
        await client.close()


# -- 6. the API server unreachable for a while ------------------------------------------------------

def _serve(data_dir: Path, port: int) -> RunningServer:
    """A bare API server on a fixed port, so that it can come back where the agent looks."""
    import threading

    from bosun.api.server import APIServer, ServerConfig

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-server-outage", daemon=True)
    thread.start()
    api = APIServer(ServerConfig(data_dir=data_dir, listen=f"127.0.0.1:{port}"))
    try:
        asyncio.run_coroutine_threadsafe(api.start(), loop).result(60)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        raise
    return RunningServer(api, loop, thread, data_dir)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The issue asks for 30 s; the test uses 8 s to stay fast. BOSUN_OUTAGE_SECONDS=30 runs the full
# outage (done by hand when this was written: same result).
OUTAGE_SECONDS = float(os.environ.get("BOSUN_OUTAGE_SECONDS", "8"))


async def test_api_server_outage_containers_keep_running_status_catches_up(tmp_path: Path,
                                                                          namespace: str) -> None:
    data_dir, port = tmp_path / "server", _free_port()
    running: RunningServer | None = _serve(data_dir, port)
    assert running is not None
    client = client_for(running)
    name = node_name(tmp_path, "outage")
    try:
        config = agent_config(tmp_path / "a", name, lease_interval=0.5)
        async with process_agent(client, config) as agent:
            # A bare API server has no controller to furnish the namespace (create_namespace
            # would wait for that).
            await client.create(resource("", "v1", "namespaces"), {"metadata": {"name": namespace}})
            # Nor a serviceaccount controller: the account pods run as is made
            # here, without a token (its volume would wait for the kube-root-ca.crt ConfigMap
            # that controller publishes).
            await client.create(resource("", "v1", "serviceaccounts"),
                                {"metadata": {"name": "default"}, "automountServiceAccountToken": False}, namespace)
            await create_pod(client, namespace, name, "steady", [{"name": "c", "command": ["sleep", "600"]}])
            before = await until(client, namespace, "steady", is_ready)
            cid = before["status"]["containerStatuses"][0]["containerID"]
            await create_pod(client, namespace, name, "short", [{"name": "c", "command": ["sleep", "3"]}],
                           restartPolicy="Never")
            await until(client, namespace, "short", is_ready)

            running.stop()  # the control plane goes away; the agent keeps going
            running = None
            await asyncio.sleep(OUTAGE_SECONDS)  # "short" ends meanwhile, unseen by the API
            states = {(c.name, c.pod_uid): c.state.value for c in await agent.driver.list_containers()}
            assert sorted(states.values()) == ["exited", "running"]
            running = _serve(data_dir, port)

            pod = await until(client, namespace, "short", lambda p: p["status"].get("phase") == "Succeeded",
                              within=20)
            assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
            after = await until(client, namespace, "steady", is_ready)
            assert after["status"]["containerStatuses"][0]["containerID"] == cid
            assert after["status"]["containerStatuses"][0]["restartCount"] == 0
            # The agent is back in business: it watches again and renews its Lease.
            await create_pod(client, namespace, name, "new", [{"name": "c", "command": ["sleep", "600"]}])
            await until(client, namespace, "new", is_ready, within=20)
            node = await client.get(NODES, name)
            assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    finally:
        await client.close()
        if running is not None:
            running.stop()
