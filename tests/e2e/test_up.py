"""`bosun up`: one command brings up a server and a node; kubectl runs a pod, reads its logs
through the API server, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BOSUN = str(Path(sys.executable).with_name("bosun"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_up_runs_a_pod_serves_its_logs_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "up"
    proc = subprocess.Popen(
        [BOSUN, "up", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}", "--runtime", "process",
         "--agent-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    env = dict(os.environ, HOME=str(tmp_path))
    kc = str(data / "kubeconfig")

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", kc, *args], capture_output=True, text=True,
                              timeout=30, env=env)

    marker = f"hello-{os.getpid()}"
    try:
        assert proc.stdout is not None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line or line.strip() == "ready":
                break
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
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    leftovers = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "a container process outlived bosun up"
