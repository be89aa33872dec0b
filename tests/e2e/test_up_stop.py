"""Stopping `bosun up` with real containers (oci runtime): pods that ignore SIGTERM stop in
parallel within their grace period (preStop hooks first), the command says what it waits for
and exits 0; a SIGKILL mid-drain or a second Ctrl-C leaves pods that the next start adopts
and `bosun up --reset` removes; a second `bosun up` on the same data dir or port is refused in
one line. Each test checks that nothing is left: mounts, processes, cgroups, network
namespaces, IP leases, nftables."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.e2e.helpers import BOSUN, Kubectl, free_port, wait_until
from tests.e2e.node_leftovers import HostState, left_behind
from tests.integration.oci_env import requires_oci

pytestmark = [requires_oci, pytest.mark.timeout(300)]
PODS = 20
GRACE = 10


@dataclass
class Node:
    proc: subprocess.Popen[str]
    data: Path
    args: list[str]
    kubectl: Kubectl

    @property
    def err(self) -> str:
        return (self.data / "err.log").read_text()

    def stop(self, sig: int = signal.SIGINT, within: float = GRACE + 20) -> tuple[int, float]:
        """Signal it; (exit code, seconds until it exited)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(within)
        return rc, time.monotonic() - t0


def _start(data: Path, args: list[str], tmp: Path) -> Node:
    with open(data / "err.log", "a") as err:
        proc = subprocess.Popen([BOSUN, "up", *args], stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = "?"
    while line and line.strip() != "ready":
        line = proc.stdout.readline()
    assert line.strip() == "ready", (data / "err.log").read_text()
    return Node(proc, data, args, Kubectl(str(data / "kubeconfig"), str(tmp)))


@contextmanager
def bosun_up(tmp: Path) -> Iterator[Node]:
    """`bosun up --runtime oci` on free ports; killed and reset whatever happens, so that a
    failing test leaves nothing running either."""
    data = tmp / "up"
    data.mkdir()
    args = ["--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}", "--runtime", "oci",
            "--agent-port", str(free_port()), "--name", f"stop-{uuid.uuid4().hex[:6]}"]
    node = _start(data, args, tmp)
    try:
        yield node
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()
        subprocess.run([BOSUN, "up", *node.args, "--reset"], capture_output=True, timeout=120, check=False)


def _restart(node: Node, tmp: Path) -> None:
    fresh = _start(node.data, node.args, tmp)
    node.proc = fresh.proc


def _create_pods(node: Node, marker: str, hooks: Path | None = None) -> list[str]:
    """PODS pods whose process ignores SIGTERM (sleep as a pid namespace's init has no
    handler), with a preStop hook that leaves a file in ``hooks``; returns their uids."""
    items = []
    for i in range(PODS):
        c: dict[str, object] = {"name": "c", "image": "host", "command": ["sleep", marker]}
        spec: dict[str, object] = {"terminationGracePeriodSeconds": GRACE, "containers": [c]}
        if hooks is not None:
            c["lifecycle"] = {"preStop": {"exec": {"command": ["touch", f"/hooks/p{i}"]}}}
            c["volumeMounts"] = [{"name": "hooks", "mountPath": "/hooks"}]
            spec["volumes"] = [{"name": "hooks", "hostPath": {"path": str(hooks)}}]
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"}, "spec": spec})
    done = node.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert done.returncode == 0, done.stderr
    wait_until(lambda: _running(node) == PODS, 120, f"{PODS} pods Running")
    pods = json.loads(node.kubectl("get", "pods", "-o", "json").stdout)["items"]
    return [p["metadata"]["uid"] for p in pods]


def _nothing_left(node: Node, marker: str, uids: list[str], before: HostState) -> None:
    """Within a few seconds (a process SIGKILLed a moment ago may still be on its way out)."""
    left: list[str] = []

    def clean() -> bool:
        left[:] = left_behind(node.data, marker, uids, before)
        return not left

    with contextlib.suppress(AssertionError):
        wait_until(clean, 10, "nothing left")
    assert left == []


def _running(node: Node) -> int:
    out = node.kubectl("get", "pods", "-o", "jsonpath={.items[*].status.phase}").stdout
    return out.split().count("Running")


def _sleeping(marker: str) -> int:
    return len(subprocess.run(["pgrep", "-x", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout.split())


def test_stop_runs_prestop_then_stops_all_pods_together_and_leaves_nothing(tmp_path: Path) -> None:
    before = HostState()
    marker = str(4_000_000 + os.getpid())
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    with bosun_up(tmp_path) as node:
        uids = _create_pods(node, marker, hooks)
        assert _sleeping(marker) == PODS
        # One node per data dir and port: a second one says why in one line, and starts nothing.
        again = subprocess.run([BOSUN, "up", *node.args], capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "another bosun up is running on data dir" in again.stderr, again.stderr
        assert again.stderr.count("\n") == 1, again.stderr
        busy = subprocess.run([BOSUN, "agent", "--cleanup", "--data-dir", str(node.data / "agent")],
                              capture_output=True, text=True, timeout=60)
        assert busy.returncode == 1 and "another bosun up is running" in busy.stderr, busy.stderr
        assert _sleeping(marker) == PODS, "a refused cleanup removed nothing"
        other = tmp_path / "other"
        taken = subprocess.run([BOSUN, "up", "--data-dir", str(other), "--listen", f"127.0.0.1:{free_port()}",
                                "--agent-port", node.args[node.args.index("--agent-port") + 1]],
                               capture_output=True, text=True, timeout=60)
        assert taken.returncode == 1 and "is already in use" in taken.stderr and "--agent-port" in taken.stderr
        assert taken.stderr.count("\n") == 1, taken.stderr
        rc, took = node.stop()
        assert rc == 0, node.err
        # Together, not one after another: 20 pods x 10 s would be over 3 minutes.
        assert took < GRACE + 20, f"stopping {PODS} pods with {GRACE} s of grace took {took:.1f} s"
        ran = sorted(p.name for p in hooks.iterdir())
        assert ran == sorted(f"p{i}" for i in range(PODS)), f"preStop hooks run: {ran}\n{node.err}"
        assert f"stopping {PODS} pod(s)" in node.err and "waiting for" in node.err and "default/p" in node.err
        _nothing_left(node, marker, uids, before)


def test_sigkill_mid_drain_then_the_next_start_adopts_and_a_clean_stop_removes_all(tmp_path: Path) -> None:
    before = HostState()
    marker = str(5_000_000 + os.getpid())
    with bosun_up(tmp_path) as node:
        uids = _create_pods(node, marker)
        node.proc.send_signal(signal.SIGINT)
        wait_until(lambda: f"stopping {PODS} pod(s)" in node.err, 30, "the drain began")
        node.proc.kill()  # a supervisor's timeout, mid-drain
        node.proc.wait()
        assert _sleeping(marker) == PODS, "the pods ignore SIGTERM: all still run"
        _restart(node, tmp_path)
        # Adopted: the same containers, not new ones beside them.
        wait_until(lambda: _running(node) == PODS, 60, "pods Running again")
        assert _sleeping(marker) == PODS
        # Pods deleted now go, and so do their containers.
        assert node.kubectl("delete", "pod", "p0", "p1", "--grace-period=1").returncode == 0
        wait_until(lambda: _sleeping(marker) == PODS - 2, 60, "deleted pods' containers gone")
        rc, _ = node.stop()
        assert rc == 0, node.err
        _nothing_left(node, marker, uids, before)


def test_second_ctrl_c_leaves_the_pods_and_cleanup_removes_them(tmp_path: Path) -> None:
    before = HostState()
    marker = str(6_000_000 + os.getpid())
    with bosun_up(tmp_path) as node:
        uids = _create_pods(node, marker)
        node.proc.send_signal(signal.SIGINT)
        wait_until(lambda: f"stopping {PODS} pod(s)" in node.err, 30, "the drain began")
        rc, _ = node.stop(signal.SIGINT, within=GRACE)
        assert rc == 0 and "stopping at once" in node.err and "left running" in node.err, node.err
        assert _sleeping(marker) > 0, "the second Ctrl-C stopped at once, leaving pods for the next start"
        # `bosun agent --cleanup` on the node's data dir (what `bosun up --reset` runs too).
        done = subprocess.run([BOSUN, "agent", "--cleanup", "--data-dir", str(node.data / "agent")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"removed {PODS} container(s), {PODS} pod sandbox(es)"), done.stdout
        assert "node network rules" in done.stdout, done.stdout
        _nothing_left(node, marker, uids, before)
        reset = subprocess.run([BOSUN, "up", *node.args, "--reset"], capture_output=True, text=True, timeout=120)
        assert reset.returncode == 0 and reset.stdout.startswith("removed 0 container(s)"), reset.stdout

