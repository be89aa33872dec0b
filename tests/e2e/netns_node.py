"""`bosun up --runtime oci` (real crun containers) in a network namespace the test makes, with
kubectl run there too: for the e2e tests of the streaming verbs (port-forward, attach, cp).

Why a namespace: the node's bridge, nftables table and pod addresses stay out of the host's
network, and go with the namespace when the test ends; kubectl's port-forward listeners are
on that namespace's loopback, which :meth:`NetnsNode.connect` reaches from the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.helpers import BOSUN, processes_with

from bosun.agent.netns_dial import socket_in


@dataclass
class NetnsNode:
    ns: str
    data: Path

    def kubectl_argv(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, "kubectl", "--kubeconfig", str(self.data / "kubeconfig"), *args]

    def kubectl(self, *args: str, stdin: str | bytes | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.kubectl_argv(*args), input=stdin, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args: str) -> str:
        done = self.kubectl(*args)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def ok_bosun(self, *args: str) -> str:
        done = subprocess.run(["ip", "netns", "exec", self.ns, BOSUN, *args], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"bosun {' '.join(args)}: {done.stderr}"
        return done.stdout

    def apply(self, manifest: dict[str, Any]) -> None:
        done = self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        assert done.returncode == 0, done.stderr

    def wait_running(self, pod: str, within: float = 90) -> dict[str, Any]:
        deadline, got = time.monotonic() + within, dict[str, Any]()
        while time.monotonic() < deadline:
            done = self.kubectl("get", "pod", pod, "-o", "json")
            got = json.loads(done.stdout) if done.returncode == 0 else {}
            phase = got.get("status", {}).get("phase")
            if phase == "Running":
                return got
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(0.3)
        raise AssertionError(f"pod {pod} did not run: {json.dumps(got.get('status', {}))[:1500]}")

    def connect(self, port: int, timeout: float = 15) -> socket.socket:
        """A TCP connection to 127.0.0.1:``port`` of the namespace (where kubectl listens)."""
        sock = socket_in(f"/run/netns/{self.ns}")
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        return sock


@contextmanager
def netns_node(tmp: Path, runtime: str = "oci", env: dict[str, str] | None = None) -> Iterator[NetnsNode]:
    """The node (``bosun up --runtime RUNTIME``, environment ``env``), ready; stopped with
    SIGINT (SIGKILL if it hangs) and its namespace removed."""
    ns = f"bst{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, BOSUN, "up", "--runtime", runtime, "--data-dir",
                                 str(tmp / "up"), "--listen", "127.0.0.1:6443", "--name", "solo"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.strip() == "ready":
                break
        else:
            raise AssertionError("bosun up did not get ready:\n" + "".join(seen[-20:]))
        # Keep reading what it prints, so that a full pipe never blocks it.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield NetnsNode(ns, tmp / "up")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
    # Whatever the node left running (shims, containers: their command lines name the data
    # dir) is ended here by pid, and then reported.
    left = processes_with(str(tmp / "up"))
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    assert not left, f"bosun up left processes behind: {left}"
