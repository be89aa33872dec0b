"""`bosun scheduler`: the scheduler in a process of its own beside a server that runs none.
It leads through its own Lease, places pending pods on hollow nodes (spread, with Scheduled
events) and gives the Lease up when stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import eventually, lines_until_ready

from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client
from bosun.controllers._common import resource
from bosun.hollow import HollowCluster

PODS = resource("", "v1", "pods")
NAMESPACES = resource("", "v1", "namespaces")
EVENTS = resource("", "v1", "events")
LEASES = resource("coordination.k8s.io", "v1", "leases")
BOSUN = str(Path(sys.executable).with_name("bosun"))


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("sched-apart"))  # no scheduler in the server


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(server.kubeconfig)) as c:
        yield c


def start_scheduler(kubeconfig: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([BOSUN, "scheduler", "--kubeconfig", kubeconfig, "--leader-elect-lease-duration", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = lines_until_ready(proc, 30)
    if lines and lines[-1].strip() == "ready":
        return proc
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"bosun scheduler did not start: {lines} {err}")


def pod(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}


async def test_bosun_scheduler_places_pods_from_its_own_process_and_resigns_when_stopped(client: Client,
                                                                                         server: RunningServer) -> None:
    ns = "apart"
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    async with HollowCluster(client, 4, name_prefix="apart") as hollow:
        proc = start_scheduler(server.kubeconfig)
        try:
            await asyncio.gather(*(client.create(PODS, pod(f"p{i}"), ns) for i in range(8)))

            async def bound() -> dict[str, str] | None:
                items, _ = await client.list_all(PODS, ns)
                placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in items}
                return placed if all(placed.values()) and len(placed) == 8 else None

            placed = await eventually(bound, within=30, what="8 pods bound by bosun scheduler")
            assert set(placed.values()) <= set(hollow.names)
            assert sorted(Counter(placed.values()).values()) == [2, 2, 2, 2]  # spread: fewest pods first

            async def scheduled_events() -> list[dict[str, object]] | None:
                items, _ = await client.list_all(EVENTS, ns, field_selector="reason=Scheduled")
                return items if items else None

            events = await eventually(scheduled_events, within=15, what="Scheduled events")
            assert all(e["source"]["component"] == "default-scheduler" for e in events)  # type: ignore[index]

            lease = await client.get(LEASES, "bosun-scheduler", "kube-system")
            holder = lease["spec"]["holderIdentity"]
            assert holder.startswith(os.uname().nodename + "_"), holder

            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err
            lease = await client.get(LEASES, "bosun-scheduler", "kube-system")
            assert lease["spec"].get("holderIdentity", "") == "", lease["spec"]  # resigned: a successor need not wait
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)


def test_bosun_scheduler_rejects_an_unknown_strategy_in_one_line(server: RunningServer) -> None:
    out = subprocess.run([BOSUN, "scheduler", "--kubeconfig", server.kubeconfig, "--scheduling-strategy", "pack"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Invalid value for '--scheduling-strategy': 'pack' is not one of 'spread', 'binpack', 'random'" in out.stderr
