"""`bosun up`: one command brings up a server and a node; kubectl runs a pod, reads its logs
through the API server, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tests.e2e.helpers import RUNTIMES, bosun_up, processes_with


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_up_runs_a_pod_serves_its_logs_and_stops_cleanly(tmp_path: Path, runtime: str) -> None:
    marker = f"hello-{os.getpid()}-{runtime}"
    with bosun_up(tmp_path, runtime=runtime) as up:
        kubectl = up.kubectl
        deadline = time.time() + 60
        assert kubectl("get", "nodes").returncode == 0
        run = kubectl("run", "greeter", "--image=host", "--restart=Never", "--",
                      "sh", "-c", f"echo {marker}; sleep 60")
        assert run.returncode == 0, run.stderr
        logs = ""
        while time.time() < deadline:
            out = kubectl("logs", "greeter")
            logs = out.stdout
            if marker in logs:
                break
            time.sleep(0.3)
        assert marker in logs
        phase = ""
        while time.time() < deadline:  # the agent reports Running right after the first output
            phase = kubectl("get", "pod", "greeter", "-o", "jsonpath={.status.phase}").stdout
            if phase == "Running":
                break
            time.sleep(0.2)
        assert phase == "Running"
        bad = kubectl("logs", "greeter", "-c", "nope")
        assert bad.returncode != 0 and "nope" in bad.stderr
    assert processes_with(marker) == [], "a container process outlived bosun up"
