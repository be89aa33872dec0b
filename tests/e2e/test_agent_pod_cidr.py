"""`bosun agent` as a user meets its pod network: joined to a control plane whose node IPAM
controller is off, it waits NotReady saying why (and does not claim to be ready), stops
cleanly on SIGTERM meanwhile, and with ``--pod-cidr`` it sets its own range and runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.helpers import BOSUN, free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Path]:
    """`bosun server` without the nodeipam controller; yields its data directory."""
    data = tmp_path / "server"
    proc = subprocess.Popen([BOSUN, "server", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}",
                             "--controllers", "*,-nodeipam"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line or line.strip() == "ready":
                break
        assert (data / "kubeconfig").exists()
        yield data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ready_condition(data: Path, node: str) -> dict[str, Any] | None:
    done = subprocess.run(["kubectl", "--kubeconfig", str(data / "kubeconfig"), "get", "node", node, "-o", "json"],
                          capture_output=True, text=True, timeout=30, env=dict(os.environ, HOME=str(data)))
    if done.returncode != 0:
        return None
    node_obj = json.loads(done.stdout)
    return next((c for c in node_obj["status"].get("conditions") or [] if c["type"] == "Ready"), None)


def agent(data: Path, tmp: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    token = subprocess.run([BOSUN, "token", "create", "--data-dir", str(data)], capture_output=True, text=True,
                           timeout=30, check=True).stdout.split()[-1]
    kubeconfig = (data / "kubeconfig").read_text()
    server = next(line.split()[-1] for line in kubeconfig.splitlines() if line.strip().startswith("server:"))
    return subprocess.Popen([BOSUN, "agent", "--server", server, "--token", token, "--ca-file",
                             str(data / "pki" / "ca.crt"), "--name", name, "--runtime", "process", "--port", "0",
                             "--data-dir", str(tmp / name), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_agent(proc: subprocess.Popen[str], data_dir: Path) -> None:
    """SIGTERM the agent, then stop the ingress nginx it ran on the host: nginx outlives an
    agent on purpose (a restarted agent adopts it), but not the test."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((data_dir / "network" / "ingress" / "nginx.pid").read_text()), signal.SIGQUIT)


def wait_condition(data: Path, node: str, status: str, within: float = 30) -> dict[str, Any]:
    deadline = time.time() + within
    while True:
        cond = ready_condition(data, node)
        if cond is not None and cond["status"] == status:
            return cond
        assert time.time() < deadline, f"node {node}: Ready={cond}"
        time.sleep(0.3)


def test_agent_waits_for_its_pod_cidr_and_stops_on_sigterm(server: Path, tmp_path: Path) -> None:
    proc = agent(server, tmp_path, "waiter")
    try:
        cond = wait_condition(server, "waiter", "False")
        assert "waiting for the node IPAM controller to assign spec.podCIDR" in cond["message"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "ready" not in out.split() and "Traceback" not in out, out
    finally:
        stop_agent(proc, tmp_path / "waiter")


def test_agent_with_pod_cidr_sets_its_own_range(server: Path, tmp_path: Path) -> None:
    proc = agent(server, tmp_path, "own-range", "--pod-cidr", "10.123.4.0/24")
    try:
        wait_condition(server, "own-range", "True")
        done = subprocess.run(["kubectl", "--kubeconfig", str(server / "kubeconfig"), "get", "node", "own-range",
                               "-o", "jsonpath={.spec.podCIDR}"], capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, HOME=str(server)))
        assert done.stdout == "10.123.4.0/24"
    finally:
        stop_agent(proc, tmp_path / "own-range")
