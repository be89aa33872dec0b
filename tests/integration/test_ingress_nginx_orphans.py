"""Only nginx's master killed (as the OOM killer would): its workers live on as orphans holding
the ports, and the ingress must end them before it starts nginx again, or the new nginx fails
with "still could not bind()". Both ways of finding them are run against a real nginx: its own
cgroup, and the open-file search used where no cgroup can be made. An unrelated nginx on the
machine (started here, on a port of its own) must come through untouched.

Every nginx process the test sees is recorded and, with a search of the test's directory,
SIGKILLed at the end whatever happened; the cgroup is removed too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import RunningServer
from tests.integration.helpers import client_for, eventually, temporary_namespace
from tests.integration.test_ingress_nginx import INGRESSES, _async, curl, free_port, site

from bosun.client.shared import SharedInformers
from bosun.network.base import NodeNetworkContext
from bosun.network.config import NetworkConfig
from bosun.network.ingress.component import NodeIngress
from bosun.network.ingress.nginx import Nginx
from bosun.network.ingress.proctree import CgroupTree, OpenFileTree, alive, own_cgroup

pytestmark = pytest.mark.skipif(not shutil.which("nginx"), reason="needs Debian's nginx")
NO_CGROUP = own_cgroup() is None


def children(pid: int) -> set[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(p) for p in done.stdout.split()}


def is_nginx(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "nginx"
    return False


def is_master(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"master process" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def start_stranger(d: Path, port: int) -> int:
    """An nginx of someone else's, serving 204 on ``port``; returns its master's pid."""
    (d / "tmp").mkdir(parents=True)
    temps = " ".join(f"{kind}_temp_path {d / 'tmp' / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))
    server = f"server {{ listen 127.0.0.1:{port}; return 204; }}"
    (d / "nginx.conf").write_text(f"worker_processes 2; pid {d / 'nginx.pid'}; error_log {d / 'error.log'};\n"
                                  "events { worker_connections 64; }\n"
                                  f"http {{ access_log off; {temps} {server} }}\n")
    subprocess.run(["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")], check=True,
                   timeout=30, stdin=subprocess.DEVNULL, start_new_session=True)
    # The daemon writes its pid file, then forks its workers, a moment after the command returns.
    for _ in range(1000):
        with contextlib.suppress(OSError, ValueError):
            master = int((d / "nginx.pid").read_text())
            if len(children(master)) == 2:
                return master
        time.sleep(0.01)
    raise AssertionError(f"the nginx of {d} did not start its workers")


def status(port: int) -> str:
    return curl(port, "stranger.test")


@pytest.mark.parametrize("tree", [
    pytest.param("cgroup", marks=pytest.mark.skipif(NO_CGROUP, reason="needs a cgroup2 hierarchy it may write")),
    "open files"])
async def test_workers_orphaned_by_a_killed_master_are_ended(api_server: RunningServer, tmp_path: Path,
                                                            tree: str) -> None:
    http, https, other = free_port(), free_port(), free_port()
    state = tmp_path / "network" / "ingress"
    seen: set[int] = set()  # every nginx process of the test, killed at the end whatever happens
    cgroup: Path | None = None
    try:
        stranger = start_stranger(tmp_path / "stranger", other)
        strangers = {stranger, *children(stranger)}
        seen |= strangers
        async with client_for(api_server) as client, temporary_namespace(client, "ingorphan") as ns:
            ingress = NodeIngress(NodeNetworkContext(
                client=client, informers=SharedInformers(client), node_name="solo", node_ip="127.0.0.1",
                pod_cidr="10.99.0.0/24", network=NetworkConfig(), state_dir=tmp_path / "network",
                ingress_http_port=http, ingress_https_port=https))
            if tree == "open files":
                ingress.nginx = Nginx(state, OpenFileTree(state))
            assert isinstance(ingress.nginx.tree, CgroupTree if tree == "cgroup" else OpenFileTree)
            if isinstance(ingress.nginx.tree, CgroupTree):
                cgroup = ingress.nginx.tree.path
            ingress.watchdog = 0.5
            try:
                await ingress.start()
                await client.create(INGRESSES, {"metadata": {"name": "site", "namespace": ns},
                                                "spec": {"rules": [site("site.test")]}})
                await eventually(lambda: _async(curl(http, "site.test") == "503"), within=20, what="route served")
                master = ingress.nginx.master()
                assert master is not None
                workers = children(master)
                seen |= {master, *workers}
                assert workers and set(ingress.nginx.tree.pids()) == {master, *workers}

                os.kill(master, signal.SIGKILL)  # the master alone
                await eventually(lambda: _async(not alive(master)), within=10, what="the master gone")
                # The bug's starting point: the orphans still hold (and serve) the port. The
                # watchdog (0.5 s) ends them and starts nginx again.
                seen |= set(ingress.nginx.tree.pids())
                new = await eventually(lambda: _async(ingress.nginx.master() not in (None, master) and
                                                      ingress.nginx.master()), within=20, what="a new master")
                seen |= {new, *children(new)}
                await eventually(lambda: _async(curl(http, "site.test") == "503"), within=20,
                                 what="served by the new nginx")
                assert not [w for w in workers if alive(w)], "an orphaned worker outlived the restart"
                new_workers = children(new)
                seen |= new_workers
                assert new_workers and set(ingress.nginx.tree.pids()) == {new, *new_workers}
                # Someone else's nginx was not touched.
                assert all(is_nginx(p) for p in strangers) and status(other) == "204"
                assert not strangers & set(ingress.nginx.tree.pids())

                # The master killed again after the agent stopped watching: the node going away
                # (stop(remove=True), below) ends the orphans too.
                await ingress.stop()
                os.kill(new, signal.SIGKILL)
                await eventually(lambda: _async(not alive(new)), within=10, what="the new master gone")
                assert all(alive(w) for w in new_workers) and curl(http, "site.test") == "503"
            finally:
                await ingress.stop(remove=True)
                await ingress.informers.stop()
            assert not [p for p in seen - strangers if alive(p)]
            assert cgroup is None or not cgroup.exists()
            assert not state.exists()
            assert status(other) == "204"
    finally:
        clean(seen, tmp_path, cgroup)


def clean(pids: set[int], tmp_path: Path, cgroup: Path | None) -> None:
    """SIGKILL what is left of the test's nginx processes, masters first (a worker killed under
    a live master is replaced), each checked to be nginx still (a pid may have been reused),
    until nothing holds a file of ``tmp_path`` open; then remove the cgroup."""
    for _ in range(500):
        left = [p for p in pids | set(OpenFileTree(tmp_path).pids()) if is_nginx(p)]
        if not left:
            break
        for pid in sorted(left, key=lambda p: not is_master(p)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    if cgroup is None:
        return
    with contextlib.suppress(OSError):
        for pid in (cgroup / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    for _ in range(500):
        try:
            cgroup.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # its killed processes not yet gone
            time.sleep(0.01)
