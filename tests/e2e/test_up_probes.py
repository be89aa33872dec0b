"""Probes and restarts on `bosun up`, on the process runtime and on crun, driven with kubectl:
an exec readiness probe makes a pod Ready, a failing liveness probe restarts its container
(with the kubelet's event), and a container that keeps crashing goes to CrashLoopBackOff."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.helpers import RUNTIMES, Kubectl, bosun_up

pytestmark = pytest.mark.timeout(150)

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: host
    command: ["sh", "-c", %(script)s]
%(probes)s
"""


def _apply(k: Kubectl, name: str, script: str, probes: str = "") -> None:
    done = k("apply", "-f", "-", stdin=POD % {"name": name, "script": json.dumps(script), "probes": probes})
    assert done.returncode == 0, done.stderr


def _status(k: Kubectl, name: str, check: Any, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        got = k("get", "pod", name, "-o", "json")
        status = json.loads(got.stdout).get("status", {}) if got.returncode == 0 else {}
        if check(status):
            return status
        time.sleep(0.3)
    raise AssertionError(f"pod {name}: {json.dumps(status)[:2000]}")


def _container(status: dict[str, Any]) -> dict[str, Any]:
    return dict((status.get("containerStatuses") or [{}])[0])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_probes_and_restarts(tmp_path: Path, runtime: str) -> None:
    with bosun_up(tmp_path, runtime=runtime) as up:
        k = up.kubectl
        _apply(k, "ready", "touch /tmp/ok; sleep 300", """    readinessProbe:
      exec: {command: ["cat", "/tmp/ok"]}
      periodSeconds: 1""")
        _apply(k, "sick", "sleep 300", """    livenessProbe:
      exec: {command: ["sh", "-c", "exit 1"]}
      periodSeconds: 1
      failureThreshold: 2""")
        _apply(k, "crash", "echo boom; exit 3")
        status = _status(k, "ready", lambda s: _container(s).get("ready") is True)
        assert _container(status)["restartCount"] == 0
        status = _status(k, "sick", lambda s: _container(s).get("restartCount", 0) >= 1)
        # Stopped: by SIGTERM (sh dies of it), or SIGKILL after the grace period where sh is the
        # container's PID 1 and the kernel spares it SIGTERM (crun).
        assert _container(status)["lastState"]["terminated"]["exitCode"] in (143, 137)
        events = k("get", "events", "--field-selector", "involvedObject.name=sick", "-o", "json")
        reasons = {e["reason"]: e["message"] for e in json.loads(events.stdout)["items"]}
        assert reasons.get("Unhealthy", "").startswith("Liveness probe failed"), reasons
        assert "failed liveness probe, will be restarted" in reasons.get("Killing", ""), reasons
        status = _status(k, "crash", lambda s: _container(s).get("state", {}).get("waiting", {}).get("reason")
                         == "CrashLoopBackOff")
        assert _container(status)["lastState"]["terminated"]["exitCode"] == 3
        assert k("logs", "crash", "--previous").stdout.strip() == "boom"
