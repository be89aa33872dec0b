"""The node's ingress component against a real API server and a real nginx, without a cluster:
what it leaves behind. nginx survives a crashed agent and is adopted by the next one (same
master, no needless reload) and started again if killed; a burst of changes is a few
reloads; the node going away (``stop(remove=True)``: `bosun up`'s stop,
the agent's cleanup) stops every nginx process and deletes its files.

nginx listens on free ports of this namespace; the only route answers 503 (its Service does
not exist), so no request leaves loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import client_for, eventually, temporary_namespace

from bosun.api.registry import must_by_plural
from bosun.client.shared import SharedInformers
from bosun.network.base import NodeNetworkContext
from bosun.network.config import NetworkConfig
from bosun.network.ingress.component import NodeIngress

pytestmark = pytest.mark.skipif(not shutil.which("nginx"), reason="needs Debian's nginx")
INGRESSES = must_by_plural("networking.k8s.io", "v1", "ingresses")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_pids(state: Path) -> set[int]:
    """Every nginx process started from this state directory (master and workers)."""
    master = subprocess.run(["pgrep", "-f", f"nginx: master process .*{state}"], capture_output=True, text=True)
    pids = {int(p) for p in master.stdout.split()}
    for pid in list(pids):
        pids |= {int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                 text=True).stdout.split()}
    return pids


def kill_nginx(state: Path) -> None:
    """SIGKILL this state directory's nginx, master first: a worker killed while its master
    lives is replaced at once, and the replacement, orphaned by the master's death, would keep
    the ports (and outlive the test)."""
    masters = subprocess.run(["pgrep", "-f", f"nginx: master process .*{state}"], capture_output=True, text=True)
    for master in [int(p) for p in masters.stdout.split()]:
        workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
        os.kill(master, signal.SIGKILL)
        workers += subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
        for pid in {int(p) for p in workers}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def curl(port: int, host: str) -> str:
    done = subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: {host}",
                           f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=15)
    return done.stdout


async def test_nginx_is_adopted_after_a_crash_and_leaves_with_the_node(api_server: RunningServer,
                                                                      tmp_path: Path) -> None:
    http, https = free_port(), free_port()
    state = tmp_path / "network" / "ingress"
    async with client_for(api_server) as client, temporary_namespace(client, "ingnginx") as ns:
        def component() -> NodeIngress:
            return NodeIngress(NodeNetworkContext(
                client=client, informers=SharedInformers(client), node_name="solo", node_ip="127.0.0.1",
                pod_cidr="10.99.0.0/24", network=NetworkConfig(), state_dir=tmp_path / "network",
                ingress_http_port=http, ingress_https_port=https))

        first = component()
        try:
            await first.start()
            await client.create(INGRESSES, {"metadata": {"name": "site", "namespace": ns},
                                            "spec": {"rules": [site("site.test")]}})
            await eventually(lambda: _async(curl(http, "site.test") == "503"), within=20, what="route served")
            assert curl(http, "other.test") == "404"
            processes = nginx_pids(state)
            assert len(processes) >= 2  # a master and its workers
            master = first.nginx.master()
            await first.informers.stop()
            # The agent dies (its component never stops): nginx serves on; the next one adopts it.
            await first.stop(remove=False)
            assert nginx_pids(state) == processes
            second = component()
            second.watchdog = 0.5
            await second.start()
            try:
                assert second.nginx.master() == master and second.reloads == 0  # nothing changed: no reload
                await client.patch(INGRESSES, "site", {"spec": {"rules": [site("moved.test")]}}, ns)
                await eventually(lambda: _async(curl(http, "moved.test") == "503"), within=20, what="reloaded")
                assert second.nginx.master() == master
                # A burst of changes is coalesced into a few reloads.
                before = second.reloads
                await asyncio.gather(*(client.create(INGRESSES, {"metadata": {"name": f"burst-{i}", "namespace": ns},
                                                                 "spec": {"rules": [site(f"b{i}.test")]}})
                                       for i in range(30)))
                await eventually(lambda: _async(curl(http, "b29.test") == "503" and curl(http, "b0.test") == "503"),
                                 within=20, what="the burst served")
                assert second.reloads - before < 15
                # nginx killed behind our back: the watchdog starts it again.
                kill_nginx(state)
                await eventually(lambda: _async(curl(http, "moved.test") == "503"), within=20, what="restarted")
                # nginx may answer a moment before its new master's pid file is written.
                await eventually(lambda: _async(second.nginx.master() not in (None, master)), within=10,
                                 what="a new nginx master")
            finally:
                await second.stop(remove=True)
                await second.informers.stop()
        finally:
            await first.stop(remove=True)
        assert nginx_pids(state) == set()
        assert not state.exists()
        assert curl(http, "moved.test") == "000"


def site(host: str) -> dict[str, Any]:
    return {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "ghost", "port": {"number": 80}}}}]}}


async def _async(value: bool) -> bool:
    return value
