"""A `bosun server --api-workers N` for tests, and which of its processes serves a connection.

Each new TCP connection is accepted by the store owner and served by the API process it hands
it to (in turn, by weight); ``serving_pid`` finds out which one did (from /proc: the
server-side socket of the connection and the process holding it), so a test can check it
really used more than one."""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.e2e.helpers import BOSUN, free_port


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def is_worker(pid: int) -> bool:
    """``pid`` is a live API worker (not gone, not a zombie, not a new process with its number)."""
    try:
        return b"bosun.api.workers" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def socket_inode(server_port: int, client_port: int) -> str | None:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        local, remote, state = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16), f[3]
        if state == "01" and local == server_port and remote == client_port:
            return f[9]
    return None


def holder(pids: list[int], inode: str) -> int | None:
    want = f"socket:[{inode}]"
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if fd.readlink().as_posix() == want:
                    return pid
            except OSError:
                continue
    return None


@dataclass
class Server:
    proc: subprocess.Popen[str]
    data_dir: Path
    port: int
    token: str
    ssl: ssl.SSLContext

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def connect(self) -> Conn:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl, timeout=30)
        conn.connect()
        return Conn(self, conn)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


class Conn:
    """One keep-alive HTTPS connection, and the API process at its other end."""

    def __init__(self, server: Server, conn: http.client.HTTPSConnection) -> None:
        self.server = server
        self.conn = conn
        assert conn.sock is not None
        self.client_port = conn.sock.getsockname()[1]

    def serving_pid(self) -> int | None:
        inode = socket_inode(self.server.port, self.client_port)
        return None if inode is None else holder(self.server.pids(), inode)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.server.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")

    def text(self, path: str) -> tuple[int, str]:
        """GET an answer that is not JSON (Prometheus text)."""
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {self.server.token}"})
        resp = self.conn.getresponse()
        return resp.status, resp.read().decode()

    def watch(self, path: str) -> http.client.HTTPResponse:
        """Start a watch; read its events with ``next_event``."""
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {self.server.token}"})
        resp = self.conn.getresponse()
        assert resp.status == 200, resp.read()
        return resp

    def close(self) -> None:
        self.conn.close()


def by_process(server: Server, want: int = 2, tries: int = 200) -> dict[int, list[Conn]]:
    """New connections until ``want`` API processes hold at least one each (the kernel gives a
    connection to whichever accepts first, so it may take a few)."""
    got: dict[int, list[Conn]] = {}
    for _ in range(tries):
        conn = server.connect()
        conn.request("GET", "/api/v1/namespaces/default")  # accepted and served by now
        pid = conn.serving_pid()
        assert pid is not None, "no API process holds the connection"
        got.setdefault(pid, []).append(conn)
        if len(got) >= want:
            return got
    raise AssertionError(f"{tries} new connections were all served by {list(got)}")


def next_event(resp: http.client.HTTPResponse) -> dict[str, Any]:
    line = resp.readline()
    assert line, "the watch ended"
    event: dict[str, Any] = json.loads(line)
    return event


@contextmanager
def api_server(tmp: Path, workers: int, *extra: str) -> Iterator[Server]:
    """`bosun server --api-workers WORKERS` (no controllers: only the API is under test); stopped
    whatever happens, its workers with it."""
    port = free_port()
    proc = subprocess.Popen([BOSUN, "server", "--data-dir", str(tmp), "--listen", f"127.0.0.1:{port}",
                             "--api-workers", str(workers), "--controllers", "none", "--no-scheduler", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.strip() == "ready" or not line:
                break
        if "ready" not in [x.strip() for x in lines]:
            if proc.poll() is None:
                proc.kill()
            raise AssertionError(f"the server did not start: {lines} {proc.communicate(timeout=10)[1][-3000:]}")
        kc = yaml.safe_load((tmp / "kubeconfig").read_text())
        ctx = ssl.create_default_context(cafile=str(tmp / "pki" / "ca.crt"))
        server = Server(proc, tmp, port, kc["users"][0]["user"]["token"], ctx)
        pids = server.pids()
        yield server
    finally:
        if proc.poll() is None:
            pids = pids + children(proc.pid)
            proc.kill()
            proc.wait()
        for pid in pids:  # a worker must never outlive its server; if one did, do not leave it
            if is_worker(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)


def namespace_furnished(conn: Conn, ns: str, within: float = 30) -> None:
    """Wait for the ConfigMap every new namespace is given (``kube-root-ca.crt``, after its
    default ServiceAccount), so a test's lists and watches see only what it wrote after."""
    deadline = time.monotonic() + within
    while conn.request("GET", f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt")[0] != 200:
        assert time.monotonic() < deadline, f"namespace {ns} got no kube-root-ca.crt"
        time.sleep(0.1)
