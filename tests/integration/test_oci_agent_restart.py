"""An agent restarted on the same data dir (oci runtime): it adopts the containers of pods
still bound to it, and kills and removes those of pods deleted while it was down (their
sandboxes, mounts, cgroups and IP leases with them) before any pod starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import PODS, agent_config, client_for, eventually, node_name, temporary_namespace
from tests.integration.oci_env import oci_env, requires_oci

from bosun.agent.agent import Agent
from bosun.agent.runtime.base import ContainerState

pytestmark = [requires_oci, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from served(tmp_path_factory.mktemp("oci-restart-server"))


def _pids_of(marker: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == f"sleep\0{marker}\0".encode():
                    out.append(int(pid))
            except OSError:
                pass
    return out


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


async def test_pods_deleted_while_the_agent_was_down_are_killed_and_removed_at_start(
        server: RunningServer, tmp_path: Path) -> None:
    client = client_for(server)
    marker = str(7_000_000 + os.getpid())
    try:
        async with oci_env() as env, temporary_namespace(client, "restart") as ns:
            config = agent_config(tmp_path / "agent", node_name(tmp_path, "rs", keep=10), pod_cidr=env.subnet)
            agent = Agent(client, config, env.driver, node_ip="127.0.0.1")
            await agent.start()
            try:
                for i in range(3):
                    await client.create(PODS, {"metadata": {"name": f"p{i}"}, "spec": {
                        "nodeName": config.node_name, "terminationGracePeriodSeconds": 30,
                        "containers": [{"name": "c", "image": "host", "command": ["sleep", marker]}]}}, ns)

                async def running() -> bool:
                    pods = (await client.list(PODS, ns))["items"]
                    return [p["status"].get("phase") for p in pods] == ["Running"] * 3

                await eventually(running, 30, "3 pods Running")
            finally:
                await agent.stop()  # not draining: the containers keep running, as after a crash
            assert len(_pids_of(marker)) == 3
            kept = {st.pod_uid: st.id for st in await env.driver.list_containers()}
            uids = {}
            for i in range(2):
                pod = await client.get(PODS, f"p{i}", ns)
                uids[pod["metadata"]["uid"]] = pod
                await client.delete(PODS, f"p{i}", ns, grace_period_seconds=0)  # gone while the agent is down
            agent = Agent(client, config, env.driver, node_ip="127.0.0.1")
            await agent.start()
            try:
                # Removed before start() returns: no container, sandbox or pod dir of theirs is left.
                assert len(_pids_of(marker)) == 1
                assert not {sb.pod_uid for sb in await env.driver.list_sandboxes()} & set(uids)
                assert not {st.pod_uid for st in await env.driver.list_containers()} & set(uids)
                assert not any((config.pods_dir / uid).exists() for uid in uids)
                assert not any(uid in _mounts() for uid in uids)
                # The pod still bound here keeps its container: adopted, not started again.
                left = await env.driver.list_containers()
                assert [(st.id, st.state) for st in left] == [
                    (kept[st.pod_uid], ContainerState.RUNNING) for st in left]
            finally:
                await agent.stop()
        assert _pids_of(marker) == []  # and oci_env checked that nothing else is left
    finally:
        await client.close()
