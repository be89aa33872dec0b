"""`bosun swarm init|join` run as a user runs them, one process per node, for the e2e tests of
swarms: each member's output is read to the end (the pipe never fills) and kept."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.helpers import BOSUN, Run, free_port


@dataclass
class Member:
    """One `bosun swarm init|join` process and what it printed up to ``ready``."""

    name: str
    data_dir: Path
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def bosun(*args: str, timeout: float = 120) -> Run:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "BOSUN_DEBUG")}
    p = subprocess.run([BOSUN, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)
    assert "Traceback" not in p.stderr, p.stderr
    return Run(p.returncode, p.stdout, p.stderr)


def ok(*args: str) -> str:
    r = bosun(*args)
    assert r.rc == 0, f"bosun {' '.join(args)} failed ({r.rc}): {r.err}"
    return r.out


def kubectl(kubeconfig: str, *args: str, server: str = "", token: str = "") -> subprocess.CompletedProcess[str]:
    extra = ["--server", f"https://{server}"] if server else []
    if token:
        extra += ["--token", token]
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *extra, *args], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, HOME=str(Path(kubeconfig).parent)), input="{}")


class Swarm:
    def __init__(self, root: Path, store: str) -> None:
        self.root = root
        self.store = store
        self.members: list[Member] = []

    def start(self, name: str, *args: str, manager: bool = True, labels: str = "",
              extra: tuple[str, ...] = ()) -> Member:
        """Run ``bosun swarm ARGS`` for node ``name``; returns once it printed ``ready``. A
        worker, too, is given an address for the manager it runs once promoted."""
        port = free_port()
        argv = [BOSUN, "swarm", *args, "--data-dir", str(self.root / name), "--name", name, "--runtime", "process",
                "--agent-port", str(free_port()), "--no-node-network"]  # the host's network is not ours to program
        # A short Lease: the other manager takes over sooner when the leader is killed.
        argv += ["--advertise-addr", f"127.0.0.1:{port}", "--leader-elect-lease-duration", "5"]
        if labels:
            argv += ["--labels", labels]
        argv += extra
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        member = Member(name, self.root / name, proc, port=port)
        self.members.append(member)
        ready = threading.Event()

        def read() -> None:  # to the end, so that the pipe never fills
            assert proc.stdout is not None
            for line in proc.stdout:
                member.output.append(line.rstrip("\n"))
                if line.strip() == "ready":
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        ready.wait(90)
        assert "ready" in member.output, f"{name} did not start: {member.output}"
        return member

    def stop(self) -> None:
        for m in reversed(self.members):
            m.stop()



def node_rows(kubeconfig: str) -> dict[str, list[str]]:
    """`bosun node ls` as {hostname: [id(+*), status, availability, manager status]}."""
    lines = ok("--kubeconfig", kubeconfig, "node", "ls").splitlines()
    assert lines[0].split() == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "STATUS", "ENGINE", "VERSION"]
    rows: dict[str, list[str]] = {}
    for line in lines[1:]:
        cells = line.split()
        current = cells[1] == "*"
        rest = cells[2:] if current else cells[1:]
        status = rest[3] if rest[3] in ("Leader", "Reachable", "Unreachable") else ""
        rows[rest[0]] = [cells[0] + (" *" if current else ""), rest[1], rest[2], status]
    return rows


def kill_processes_under(root: Path) -> list[int]:
    """SIGKILL every process that runs from, or holds a file under, ``root``: the containers
    and shims of a manager the test killed outright live on (as a crashed node's do) and are
    the test's to remove. Returns their pids."""
    prefix = str(root)
    killed: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            held = [os.readlink(entry / "cwd")] + [os.readlink(fd) for fd in (entry / "fd").iterdir()]
            held.append((entry / "cmdline").read_bytes().decode(errors="replace"))
        except OSError:
            continue
        if any(prefix in h for h in held):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed
