"""Every process of the node's nginx, found and killed together, even after its master died.

When only nginx's master dies (SIGKILL, the OOM killer), its workers live on as orphans of
init: they keep the listening sockets, so a new nginx fails with "still could not bind()"
until they are gone, and the dead master's pid no longer leads to them. A tree is the handle
that still does, and it never reaches an nginx that is not ours:

- :class:`CgroupTree`: nginx runs in a cgroup v2 of its own, made below the agent's cgroup
  (whatever contains the agent, a systemd unit or the test harness's node, contains nginx as
  before); ``cgroup.kill`` ends everything in it at once, in the kernel, forks in flight too.
- :class:`OpenFileTree`, where no cgroup can be made (no cgroup2 mounted, not root): the
  nginx processes holding a file of our state directory open (every worker keeps the error
  log open).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Protocol

from bosun.agent.cgroup_mounts import parse_mountinfo

RECORD = "nginx.cgroup"  # in the state directory: the cgroup nginx was started in


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone: it holds no socket)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class ProcessTree(Protocol):
    def command(self, argv: list[str]) -> list[str]:
        """``argv`` made to start inside the tree (with every process it forks)."""
        ...

    def pids(self) -> list[int]:
        """Its processes still running."""
        ...

    def kill(self) -> None:
        """SIGKILL every process of the tree."""
        ...

    def remove(self) -> None:
        """Forget the (killed) tree: nothing of it is left on the machine."""
        ...


class CgroupTree:
    def __init__(self, path: Path, state_dir: Path) -> None:
        self.path = path
        self.record = state_dir / RECORD

    def command(self, argv: list[str]) -> list[str]:
        self.path.mkdir(exist_ok=True)
        self.record.write_text(f"{self.path}\n")
        # The shell joins the cgroup, then becomes nginx: nothing of it runs outside. Should
        # the kernel refuse the move (a delegation it does not allow), nginx still starts, as
        # it did before it had a cgroup: an ingress without one beats no ingress.
        return ["sh", "-c", 'echo 0 2>/dev/null > "$1"; shift; exec "$@"', "sh", str(self.path / "cgroup.procs"),
                *argv]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split() if alive(int(p))]
        except (OSError, ValueError):
            return []

    def kill(self) -> None:
        killer = self.path / "cgroup.kill"
        if not killer.exists():  # a kernel before 5.14: one by one (end() repeats it)
            _kill(self.pids())
            return
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: nothing to kill
            killer.write_text("1")

    def remove(self) -> None:
        with contextlib.suppress(OSError):  # busy: a process end() could not kill (it said so)
            self.path.rmdir()
        self.record.unlink(missing_ok=True)


class OpenFileTree:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir

    def command(self, argv: list[str]) -> list[str]:
        return argv

    def _ours(self, pid: str) -> bool:
        prefix = f"{self.dir}/"
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return False
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                    return True
        return False

    def pids(self) -> list[int]:
        out = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                comm = (proc / "comm").read_text().strip()
            except OSError:
                continue
            if comm == "nginx" and self._ours(proc.name) and alive(int(proc.name)):
                out.append(int(proc.name))
        return out

    def kill(self) -> None:
        _kill(self.pids())

    def remove(self) -> None:
        return None


def own_cgroup() -> Path | None:
    """This process's cgroup in the cgroup2 hierarchy, as a directory; None without one."""
    try:
        mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    rel = next((ln[3:] for ln in lines if ln.startswith("0::")), None)
    mount = next((Path(m.mount_point) for m in mounts if m.fstype == "cgroup2"), None)
    if rel is None or mount is None:
        return None
    own = mount / rel.strip("/")
    return own if own.is_dir() and os.access(own, os.W_OK) else None


def tree_for(state_dir: Path) -> ProcessTree:
    """The cgroup nginx was started in (recorded in the state directory: an agent restarted
    elsewhere still finds it), else a new one below ours, else the open-file search."""
    with contextlib.suppress(OSError):
        recorded = Path((state_dir / RECORD).read_text().strip())
        if recorded.is_dir():
            return CgroupTree(recorded, state_dir)
    own = own_cgroup()
    if own is None:
        return OpenFileTree(state_dir)
    name = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return CgroupTree(own / f"bosun-ingress-{name}", state_dir)


async def end(tree: ProcessTree, within: float) -> list[int]:
    """SIGKILL the tree until nothing of it runs; what still runs after ``within`` seconds
    (killed again each round: a process forking while it is killed leaves a child)."""
    deadline = time.monotonic() + within
    while left := tree.pids():
        if time.monotonic() > deadline:
            return left
        tree.kill()
        await asyncio.sleep(0.01)
    return []
