"""The processes a benchmark measures: a `bosun server` and, for the etcd store, a real etcd.

The server runs in its own process so that the load generator's CPU is not counted as the
server's and the two compete for the cores as they would on a real machine.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ETCD = "/usr/bin/etcd"
ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (from /proc, so no psutil needed)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (an API server with --api-workers is several processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and of every live descendant."""
    total = 0.0
    for p in process_tree(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            continue  # exited meanwhile
    return total


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Etcd:
    proc: subprocess.Popen[bytes]
    endpoint: str
    data_dir: Path

    def stop(self) -> None:
        stop_process(self.proc)


def start_ready(cmd: list[str], log: Path, timeout: float, what: str) -> subprocess.Popen[bytes]:
    """Start a `bosun` process and return once it prints ``ready``."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
    assert proc.stdout is not None
    out, deadline = b"", time.monotonic() + timeout
    while b"ready" not in out:
        left = deadline - time.monotonic()
        if proc.poll() is not None or left <= 0:
            stop_process(proc)
            raise RuntimeError(f"{what} did not start: {out.decode()!r} {log.read_text()[-2000:]}")
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
        if ready:
            out += os.read(proc.stdout.fileno(), 4096)
    # Nothing reads stdout from here on; a full pipe must not block the process.
    proc.stdout.close()
    return proc


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
            return b'"true"' in resp.read()
    except OSError:
        return False


def start_etcd(data_dir: Path, timeout: float = 30) -> Etcd:
    """A single-member etcd on free loopback ports, its data in ``data_dir``."""
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "etcd.log", "wb") as log:
        proc = subprocess.Popen(
            [
                ETCD, "--name", "bench", "--data-dir", str(data_dir / "data"),
                "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"bench={peer_url}",
                # The default 2 GB quota would raise NOSPACE on a long churn run.
                "--quota-backend-bytes", str(8 * 1024**3),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while not _etcd_healthy(client_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"etcd did not start: {(data_dir / 'etcd.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return Etcd(proc, f"127.0.0.1:{client}", data_dir)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    data_dir: Path

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)


def start_server(data_dir: Path, store_url: str, controllers: str = "none", timeout: float = 60,
                 api_workers: int = 1, extra: tuple[str, ...] = ()) -> Server:
    """`bosun server` in its own process; returns once it prints ``ready``.

    Controllers are off by default: this measures the API, not the control loops it hosts.
    ``api_workers`` is always given (the server's default is the number of cores), so that a
    figure says how many API processes it took. ``extra``: more `bosun server` flags."""
    data_dir.mkdir(parents=True, exist_ok=True)
    bosun = Path(sys.executable).parent / "bosun"
    cmd = [str(bosun), "server", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{free_port()}"]
    if store_url:
        cmd += ["--store", store_url]
    cmd += ["--controllers", controllers, "--api-workers", str(api_workers)]
    if controllers == "none":
        cmd.append("--no-scheduler")  # a pure API benchmark: nothing else writes the pods
    cmd += extra
    proc = start_ready(cmd, data_dir / "server.log", timeout, "bosun server")
    server = Server(proc, data_dir)
    if "-serviceaccounts" not in controllers.split(","):
        _default_account_made(server, timeout)
    return server


def _default_account_made(server: Server, timeout: float) -> None:
    """Pods are refused until their namespace's ``default`` ServiceAccount exists; its
    controller starts once the server leads, a moment after ``ready``: wait for it, as
    upstream's e2e framework does, so that a figure never counts refusals."""
    deadline = time.monotonic() + timeout
    while subprocess.run(["kubectl", "--kubeconfig", server.kubeconfig, "-n", "default", "get", "serviceaccount",
                          "default"], capture_output=True, timeout=30).returncode != 0:
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("the default ServiceAccount was not made in time")
        time.sleep(0.2)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
