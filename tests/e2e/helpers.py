"""`bosun up` run as a user runs it from a shell, for the e2e tests that need a whole node (a
server and an agent with the process runtime) and drive it with kubectl; Ctrl-C is how it stops,
so that is how the tests stop it."""

from __future__ import annotations

import fcntl
import os
import pty
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.harness.fixtures import requires_netns

BOSUN = str(Path(sys.executable).with_name("bosun"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Kubectl:
    """kubectl with the cluster's kubeconfig and a private HOME, so its cache is the test's own;
    ``prefix`` runs it elsewhere (``ip netns exec NS``: the network namespace of the node)."""

    def __init__(self, kubeconfig: str, home: str, prefix: tuple[str, ...] = ()) -> None:
        self.kubeconfig = kubeconfig
        self.env = dict(os.environ, HOME=home)
        self.prefix = prefix

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, "kubectl", "--kubeconfig", self.kubeconfig, *args]

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True, timeout=30,
                              env=self.env)


@dataclass
class Up:
    proc: subprocess.Popen[str]
    kubeconfig: str
    agent_port: int
    kubectl: Kubectl

    def get(self, url: str, token: str) -> str:
        """GET over HTTPS (certificate not checked) from where `bosun up` runs: its network
        namespace for the oci runtime."""
        done = subprocess.run([*self.kubectl.prefix, "curl", "-sfk", "-H", f"Authorization: Bearer {token}", url],
                              capture_output=True, text=True, timeout=15)
        assert done.returncode == 0, f"GET {url}: curl exited {done.returncode}: {done.stderr}"
        return done.stdout


# The runtimes a `bosun up` test runs on: the process runtime, and crun containers where
# the machine can run them (root, crun, the CNI plugins).
RUNTIMES = ["process", pytest.param("oci", marks=requires_netns)]


@contextmanager
def policy_namespace(kubeconfig: str, namespace: str, workdir: str, *crds: str) -> Iterator[Kubectl]:
    """kubectl in a fresh ``namespace``; afterwards every admission policy and binding (they
    are cluster-wide), the named CRDs and the namespace are deleted, whatever happened."""
    k = Kubectl(kubeconfig, workdir)
    made = k("create", "namespace", namespace)
    assert made.returncode == 0, made.stderr
    try:
        yield k
    finally:
        k("delete", "validatingadmissionpolicybindings", "--all", "--wait=false")
        k("delete", "validatingadmissionpolicies", "--all", "--wait=false")
        for crd in crds:
            k("delete", "crd", crd, "--ignore-not-found", "--wait=false")
        k("delete", "namespace", namespace, "--wait=false")


@contextmanager
def bosun_up(tmp: Path, ready_within: float = 60, runtime: str = "process",
             ingress_ports: tuple[int, int] | None = None) -> Iterator[Up]:
    """`bosun up --runtime RUNTIME` with its data in ``tmp``/up, on free loopback ports; yields
    once it prints ``ready`` and stops it with SIGINT (SIGKILL if it hangs) whatever happens.

    With ``oci`` (real crun containers, their bridge and the node's nftables table) it runs in
    a network namespace of its own, made here and removed after, so nothing of it reaches the
    machine's own network; kubectl then runs in that namespace too. Its ingress (nginx on
    ports 80 and 443 by default) is off unless ``ingress_ports`` (HTTP, HTTPS) are given:
    tests running at once would fight over them."""
    data = tmp / "up"
    agent_port = free_port()
    http, https = ingress_ports or (0, 0)
    prefix: tuple[str, ...] = ()
    netns = ""
    if runtime == "oci":
        netns = f"bup{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        prefix = ("ip", "netns", "exec", netns)
    proc = subprocess.Popen(
        [*prefix, BOSUN, "up", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}", "--runtime", runtime,
         "--agent-port", str(agent_port), "--ingress-http-port", str(http), "--ingress-https-port", str(https)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    said: deque[str] = deque(maxlen=200)
    try:
        assert proc.stdout is not None
        deadline = time.time() + ready_within
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line or line.strip() == "ready":
                break
        kubeconfig = str(data / "kubeconfig")
        # Keep reading what it says: a full pipe would block its event loop on a log line.
        threading.Thread(target=lambda: said.extend(proc.stdout or ()), daemon=True).start()
        yield Up(proc, kubeconfig, agent_port, Kubectl(kubeconfig, str(tmp), prefix))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)  # pods that ignore SIGTERM hold the stop for their grace period (30 s)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                print("bosun up did not stop within 60 s; its last words:\n" + "".join(said)[-3000:])
            if netns:
                subprocess.run(["ip", "netns", "del", netns], check=False)


def processes_with(marker: str) -> list[str]:
    """Pids of processes whose command line holds ``marker``: after `bosun up` stops, none of its
    containers may be left."""
    return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()


@dataclass
class Run:
    rc: int
    out: str
    err: str


@dataclass
class BosunCli:
    """The `bosun` command against a running `bosun up`, as a user types it (no KUBECONFIG or
    debug switch from the test's environment); a traceback on stderr fails the test by itself."""

    up: Up

    def bosun(self, *args: str, timeout: float = 120, stdin: str | None = None) -> Run:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "BOSUN_DEBUG")}
        p = subprocess.run([*self.up.kubectl.prefix, BOSUN, "--kubeconfig", self.up.kubeconfig, *args],
                           capture_output=True, text=True,
                           timeout=timeout, env=env, check=False, input=stdin)
        assert "Traceback" not in p.stderr, p.stderr
        return Run(p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str) -> str:
        r = self.bosun(*args)
        assert r.rc == 0, f"bosun {' '.join(args)} failed ({r.rc}): {r.err}"
        return r.out


def wait_until(check: Callable[[], bool], within: float = 60, what: str = "") -> None:
    deadline = time.time() + within
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"not within {within}s: {what}")


def one_line_error(r: Run) -> str:
    """The CLI refused with exit code 1 and said why in one line."""
    assert r.rc == 1, (r.rc, r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    return lines[0]


class Terminal:
    """kubectl on the slave side of a pty whose window size we control."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int, cols: int) -> None:
        self.master, slave = pty.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, preexec_fn=_controlling_tty)
        os.close(slave)
        self.seen = ""

    def resize(self, rows: int, cols: int) -> None:
        # The kernel sends SIGWINCH to kubectl, which forwards the new size.
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, text: str, within: float = 15) -> None:
        deadline = time.monotonic() + within
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never appeared; the terminal showed {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # EIO: kubectl has exited
                    assert text in self.seen, f"{text!r} never appeared; the terminal showed {self.seen!r}"

    def ask_until(self, command: str, text: str, within: float = 15) -> None:
        """Sends ``command`` again every half second until ``text`` appears: for an answer that
        is right only once something asynchronous has landed (kubectl attach sends the size
        plus one, then the size, on its resize stream, racing the first line typed)."""
        deadline = time.monotonic() + within
        while True:
            self.send(command)
            try:
                self.expect(text, within=min(0.5, max(deadline - time.monotonic(), 0.01)))
                return
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
