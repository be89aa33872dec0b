"""A node in a network namespace started with `ip netns exec`, as people try Bosun on one
machine: `bosun up` there runs real crun containers (the fresh /sys that `ip netns exec`
mounts hid the cgroup hierarchy from the runtime), and the agent's new flags refuse bad input."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.helpers import BOSUN, processes_with
from tests.harness.fixtures import requires_netns


@requires_netns
@pytest.mark.timeout(120)
def test_bosun_up_under_ip_netns_exec_runs_a_crun_container(tmp_path: Path) -> None:
    ns = f"bnu{secrets.token_hex(3)}"
    marker = f"netns-up-{ns}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, BOSUN, "up", "--runtime", "oci", "--data-dir",
                                 str(tmp_path / "up"), "--listen", "127.0.0.1:6443", "--name", "solo"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "ready":
                break
        kubectl = ["ip", "netns", "exec", ns, "kubectl", "--kubeconfig", str(tmp_path / "up" / "kubeconfig")]
        run = subprocess.run([*kubectl, "run", "p", "--image=host", "--restart=Never", "--", "sh", "-c",
                              f"echo {marker}; sleep 600"], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        deadline, pod = time.monotonic() + 60, dict[str, Any]()
        while time.monotonic() < deadline:
            got = subprocess.run([*kubectl, "get", "pod", "p", "-o", "json"], capture_output=True, text=True)
            pod = json.loads(got.stdout) if got.returncode == 0 else {}
            if pod.get("status", {}).get("phase") == "Running" or pod.get("status", {}).get("phase") == "Failed":
                break
            time.sleep(0.3)
        status = pod.get("status", {})
        assert status.get("phase") == "Running", json.dumps(status)[:2000]
        assert status["containerStatuses"][0]["containerID"].startswith("oci://")
        # The container is a real one in the pod's network (not the process runtime's host one).
        assert status["podIP"] != "127.0.0.1" and processes_with(marker) != []
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)  # `bosun up` drains: its containers stop with it
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert processes_with(marker) == []


def test_the_agent_refuses_a_cgroup_parent_outside_the_tree() -> None:
    for bad in ("/", "a/../../b"):
        done = subprocess.run([BOSUN, "agent", "--server", "https://192.0.2.1:6443", "--token", "t",
                               "--cgroup-parent", bad], capture_output=True, text=True, timeout=30)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert done.stderr.startswith("error: Invalid value for --cgroup-parent:") and done.stderr.count("\n") == 1


def test_the_agent_refuses_unsafe_sysctls_that_are_not_namespaced() -> None:
    done = subprocess.run([BOSUN, "agent", "--server", "https://192.0.2.1:6443", "--token", "t",
                           "--allowed-unsafe-sysctls", "kernel.msg*,vm.swappiness"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: Invalid value for --allowed-unsafe-sysctls: the sysctls ['vm.swappiness'] "
                                  "are not known to be namespaced")
    assert done.stderr.count("\n") == 1
