"""A node in a network namespace started with `ip netns exec`, as people try Bosun on one
machine: `bosun up` there runs real crun containers (the fresh /sys that `ip netns exec`
mounts hid the cgroup hierarchy from the runtime), and the agent's new flags refuse bad input."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from tests.e2e.helpers import BOSUN, processes_with
from tests.e2e.netns_node import netns_node
from tests.harness.fixtures import requires_netns


@requires_netns
@pytest.mark.timeout(180)
def test_bosun_up_under_ip_netns_exec_runs_a_crun_container(tmp_path: Path) -> None:
    marker = f"netns-up-{secrets.token_hex(3)}"
    with netns_node(tmp_path) as node:
        node.ok("run", "p", "--image=host", "--restart=Never", "--", "sh", "-c", f"echo {marker}; sleep 600")
        status = node.wait_running("p", within=60)["status"]
        assert status["containerStatuses"][0]["containerID"].startswith("oci://")
        # The container is a real one in the pod's network (not the process runtime's host one).
        assert status["podIP"] != "127.0.0.1" and processes_with(marker) != []
    assert processes_with(marker) == []  # `bosun up` drains on SIGINT: its containers stop with it


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
