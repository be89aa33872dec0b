"""`kubectl debug` against `bosun up --runtime oci` (real crun containers): an ephemeral
container in a pod, sharing its target's process namespace (its output, `kubectl logs` and
`kubectl exec` into it), a node debug pod in the node's namespaces, and what is refused.

Non-interactive only: `-it` needs `kubectl attach`, which is another part's work."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.helpers import Kubectl, bosun_up
from tests.harness.fixtures import requires_netns

pytestmark = [requires_netns, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    with bosun_up(tmp_path_factory.mktemp("debug-up"), runtime="oci") as up:
        k = up.kubectl
        run = k("run", "app", "--image=host", "--restart=Never", "--", "sleep", "301")
        assert run.returncode == 0, run.stderr
        _wait(k, "app", lambda p: p.get("status", {}).get("phase") == "Running")
        yield k


def _pod(k: Kubectl, name: str) -> dict[str, Any]:
    got = k("get", "pod", name, "-o", "json")
    return json.loads(got.stdout) if got.returncode == 0 else {}


def _wait(k: Kubectl, name: str, check: Any, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        pod = _pod(k, name)
        if pod and check(pod):
            return pod
        assert time.monotonic() < deadline, json.dumps(pod.get("status", {}))[:3000]
        time.sleep(0.3)


def _debug_state(name: str) -> Any:
    def state(pod: dict[str, Any]) -> dict[str, Any]:
        for s in pod.get("status", {}).get("ephemeralContainerStatuses") or []:
            if s["name"] == name:
                return dict(s.get("state") or {})
        return {}
    return state


def test_ephemeral_container_shares_the_targets_processes(kubectl: Kubectl) -> None:
    done = kubectl("debug", "app", "--image=host", "--target=app", "-c", "peek", "--", "cat", "/proc/1/cmdline")
    assert done.returncode == 0, done.stderr
    pod = _wait(kubectl, "app", lambda p: "terminated" in _debug_state("peek")(p))
    assert _debug_state("peek")(pod)["terminated"]["exitCode"] == 0
    assert kubectl("logs", "app", "-c", "peek").stdout.replace("\0", " ").strip() == "sleep 301"
    # A long-running one takes `kubectl exec`; the pod's own container runs on untouched.
    shell = kubectl("debug", "app", "--image=host", "--target=app", "-c", "shell", "--", "sleep", "302")
    assert shell.returncode == 0, shell.stderr
    _wait(kubectl, "app", lambda p: "running" in _debug_state("shell")(p))
    seen = kubectl("exec", "app", "-c", "shell", "--", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline")
    assert (seen.returncode, seen.stdout.strip()) == (0, "sleep 301"), seen.stderr
    pod = _pod(kubectl, "app")
    assert pod["status"]["phase"] == "Running" and pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert [c["name"] for c in pod["spec"]["ephemeralContainers"]] == ["peek", "shell"]


def test_bad_debug_requests(kubectl: Kubectl) -> None:
    missing = kubectl("debug", "app", "--image=127.0.0.1:1/nope:v1", "-c", "broken", "--", "true")
    assert missing.returncode == 0, missing.stderr  # accepted: the node cannot pull it
    pod = _wait(kubectl, "app", lambda p: _debug_state("broken")(p).get("waiting", {}).get("reason")
                in ("ErrImagePull", "ImagePullBackOff"))
    assert 'failed to pull image "127.0.0.1:1/nope:v1"' in _debug_state("broken")(pod)["waiting"]["message"]
    target = kubectl("debug", "app", "--image=host", "--target=nope", "-c", "lost", "--", "true")
    assert target.returncode != 0
    assert 'spec.ephemeralContainers[3].targetContainerName: Not found: "nope"' in target.stderr, target.stderr
    again = kubectl("debug", "app", "--image=host", "-c", "app", "--", "true")
    assert again.returncode != 0 and "Duplicate value" in again.stderr, again.stderr


def test_node_debug_pod_runs_in_the_nodes_namespaces(kubectl: Kubectl) -> None:
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout
    made = kubectl("debug", f"node/{node}", "--image=host", "--", "sh", "-c",
                   "cat /proc/1/comm; test -d /host/etc && echo host-root")
    assert made.returncode == 0, made.stderr
    found = re.search(r"Creating debugging pod (\S+) with container debugger on node", made.stdout + made.stderr)
    assert found, made.stdout + made.stderr
    name = found.group(1)
    pod = _wait(kubectl, name, lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert pod["spec"]["hostPID"] and pod["spec"]["hostIPC"] and pod["spec"]["hostNetwork"]
    with open("/proc/1/comm") as f:
        host_init = f.read().strip()
    assert kubectl("logs", name).stdout.split() == [host_init, "host-root"]
    assert kubectl("delete", "pod", name).returncode == 0


def test_debug_profiles_reach_the_container(kubectl: Kubectl) -> None:
    """kubectl's netadmin profile asks for NET_ADMIN and NET_RAW; sysadmin for privileged."""
    for container, profile, wanted in (("net", "netadmin", 1 << 12 | 1 << 13), ("root", "sysadmin", 1 << 21)):
        done = kubectl("debug", "app", "--image=host", f"--profile={profile}", "-c", container, "--",
                       "grep", "CapEff", "/proc/self/status")
        assert done.returncode == 0, done.stderr
        _wait(kubectl, "app", lambda p, c=container: "terminated" in _debug_state(c)(p))
        caps = int(kubectl("logs", "app", "-c", container).stdout.split()[1], 16)
        assert caps & wanted == wanted, hex(caps)
