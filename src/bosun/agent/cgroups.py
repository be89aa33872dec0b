"""Pod and container cgroups (v1 and v2): limits, OOM counts, usage, and complete removal.

Why the agent owns these instead of leaving them to crun/runc: the OCI runtime deletes the
cgroup it made as soon as a foreground ``run`` ends, and with it the ``oom_kill`` counter
that tells an OOMKilled container from one that died of SIGKILL. So limits live on a
cgroup we create (``<parent>/pod<uid>/<container id>``) and the runtime only gets a leaf
below it (``.../ctr``) with no limits of its own. The counter then survives until the
container is removed.

Paths given to this module are relative to each hierarchy's root ("bosun/podX/abc"); on
cgroup v1 the same relative path is made in every hierarchy we write to (cpu, cpuacct,
memory, pids), which is also what runc/crun do for their leaf.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from bosun.agent.kvfiles import int_fields

CGROUP_ROOT = Path("/sys/fs/cgroup")


def is_v2() -> bool:
    """Unified hierarchy only (``cgroup.controllers`` at the mount root)."""
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def _cgroup_mounts() -> list[tuple[str, Path, list[str]]]:
    """(``cgroup`` or ``cgroup2``, mount point, super options) of each cgroup mount in
    /proc/self/mountinfo; none when it cannot be read."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        pre, _, post = line.partition(" - ")
        fields = post.split()
        if fields and fields[0] in ("cgroup", "cgroup2"):
            opts = fields[2].split(",") if len(fields) >= 3 else []
            out.append((fields[0], Path(pre.split()[4]), opts))
    return out


def _v1_mounts() -> dict[str, Path]:
    """controller -> mount point (handles ``cpu,cpuacct`` joins)."""
    out: dict[str, Path] = {}
    for fstype, mnt, opts in _cgroup_mounts():
        if fstype != "cgroup":
            continue
        for opt in opts:
            if opt in ("rw", "ro") or opt.startswith("relatime") or opt.startswith("release_agent"):
                continue
            out.setdefault(opt, mnt)
    return out


def _all_mounts() -> list[Path]:
    """Every cgroup mount point (v1 and v2, including name=systemd), for cleanup."""
    out: list[Path] = []
    for _fstype, mnt, _opts in _cgroup_mounts():
        if mnt not in out:
            out.append(mnt)
    return out


@dataclass
class Limits:
    cpu_quota_us: int | None = None
    cpu_period_us: int = 100_000
    cpu_shares: int | None = None
    memory_bytes: int | None = None
    pids: int | None = None


def shares_to_weight(shares: int) -> int:
    """The conversion runc/crun use from cgroup v1 cpu.shares to v2 cpu.weight."""
    shares = max(2, min(shares, 262144))
    return 1 + ((shares - 2) * 9999) // 262142


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)




class Cgroups:
    """Creates, limits, measures and removes cgroups under one parent (e.g. ``bosun``)."""

    V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")

    def __init__(self, parent: str = "bosun") -> None:
        self.parent = parent.strip("/")
        self.v2 = is_v2()
        self._mounts = {} if self.v2 else _v1_mounts()
        self._every: list[Path] | None = None  # every hierarchy's mount point, read at the first removal

    def _hierarchies(self) -> list[Path]:
        """The cgroup mount points, read once like the controllers' above (never per removal:
        /proc/self/mountinfo holds every pod's mounts, and 100 pods stopping read it 100 times)."""
        if not self._every:  # none read (yet): look again
            self._every = _all_mounts()
        return self._every

    def rel(self, *parts: str) -> str:
        return "/".join([self.parent, *parts])

    def _dirs(self, rel: str) -> dict[str, Path]:
        if self.v2:
            return {"unified": CGROUP_ROOT / rel}
        return {c: self._mounts[c] / rel for c in self.V1_CONTROLLERS if c in self._mounts}

    def _enable_v2(self, rel: str) -> None:
        """Turn on cpu/memory/pids for every ancestor's children (v2's top-down rule)."""
        cur = CGROUP_ROOT
        for part in rel.split("/"):
            avail = set((cur / "cgroup.controllers").read_text().split())
            want = [c for c in ("cpu", "memory", "pids") if c in avail]
            with contextlib.suppress(OSError):
                _write(cur / "cgroup.subtree_control", " ".join("+" + c for c in want))
            cur = cur / part
            cur.mkdir(exist_ok=True)

    def create(self, rel: str, limits: Limits) -> None:
        """Make ``rel`` (and its parents) and apply ``limits``; idempotent."""
        if self.v2:
            self._enable_v2(rel)
            # The leaf the runtime creates below us needs the controllers too.
            d = CGROUP_ROOT / rel
            avail = set((d / "cgroup.controllers").read_text().split())
            with contextlib.suppress(OSError):
                _write(d / "cgroup.subtree_control",
                       " ".join("+" + c for c in ("cpu", "memory", "pids") if c in avail))
            if limits.cpu_quota_us is not None:
                _write(d / "cpu.max", f"{limits.cpu_quota_us} {limits.cpu_period_us}")
            if limits.cpu_shares is not None and (d / "cpu.weight").exists():
                _write(d / "cpu.weight", str(shares_to_weight(limits.cpu_shares)))
            if limits.memory_bytes is not None:
                _write(d / "memory.max", str(limits.memory_bytes))
                with contextlib.suppress(OSError):
                    _write(d / "memory.swap.max", "0")
            if limits.pids is not None and (d / "pids.max").exists():
                _write(d / "pids.max", str(limits.pids))
            return
        dirs = self._dirs(rel)
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        cpu = dirs.get("cpu")
        if cpu is not None:
            if limits.cpu_quota_us is not None:
                _write(cpu / "cpu.cfs_period_us", str(limits.cpu_period_us))
                _write(cpu / "cpu.cfs_quota_us", str(limits.cpu_quota_us))
            if limits.cpu_shares is not None:
                _write(cpu / "cpu.shares", str(max(2, limits.cpu_shares)))
        mem = dirs.get("memory")
        if mem is not None and limits.memory_bytes is not None:
            _write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
            # No swap either: a limit must mean OOM, as in Kubernetes.
            with contextlib.suppress(OSError):
                _write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                _write(mem / "memory.swappiness", "0")
        pids = dirs.get("pids")
        if pids is not None and limits.pids is not None:
            _write(pids / "pids.max", str(limits.pids))

    def oom_kills(self, rel: str) -> int:
        """Processes the kernel OOM-killed in this cgroup (including its children)."""
        if self.v2:
            return int_fields(CGROUP_ROOT / rel / "memory.events").get("oom_kill", 0)
        mem = self._dirs(rel).get("memory")
        if mem is None:
            return 0
        return int_fields(mem / "memory.oom_control").get("oom_kill", 0)

    def memory_limit_hit(self, rel: str) -> bool:
        """Whether usage in ``rel`` ever reached its memory limit.

        v1 counts ``oom_kill`` only on the cgroup of the killed process (the runtime's leaf,
        deleted with it) and recent kernels no longer keep ``memory.failcnt``; so on v1 a
        peak usage at the limit, together with a SIGKILL, is taken as the OOM kill it is.
        """
        if self.oom_kills(rel) > 0:
            return True
        if self.v2:
            return False
        mem = self._dirs(rel).get("memory")
        if mem is None:
            return False
        try:
            limit = int((mem / "memory.limit_in_bytes").read_text())
            if limit >= 1 << 60:
                return False
            peak = max(int((mem / f).read_text()) for f in ("memory.max_usage_in_bytes", "memory.failcnt"))
            fails = int((mem / "memory.failcnt").read_text())
        except (OSError, ValueError):
            return False
        return fails > 0 or peak >= limit - (256 << 10)

    def usage(self, rel: str) -> tuple[int, int] | None:
        """(cpu nanoseconds, memory working set bytes) as kubelet/cAdvisor count them."""
        try:
            if self.v2:
                d = CGROUP_ROOT / rel
                cpu_ns = int_fields(d / "cpu.stat").get("usage_usec", 0) * 1000
                current = int((d / "memory.current").read_text())
                inactive = int_fields(d / "memory.stat").get("inactive_file", 0)
                return cpu_ns, max(0, current - inactive)
            dirs = self._dirs(rel)
            cpu_ns = int((dirs["cpuacct"] / "cpuacct.usage").read_text()) if "cpuacct" in dirs else 0
            mem = dirs["memory"]
            current = int((mem / "memory.usage_in_bytes").read_text())
            inactive = int_fields(mem / "memory.stat").get("total_inactive_file", 0)
            return cpu_ns, max(0, current - inactive)
        except (OSError, ValueError, KeyError):
            return None

    def exists(self, rel: str) -> bool:
        return any(d.is_dir() for d in self._dirs(rel).values())

    def remove(self, rel: str, timeout: float = 5.0) -> None:
        """Remove ``rel`` and everything below it in every hierarchy (the runtime's leaves
        too); processes still inside are SIGKILLed first. Idempotent."""
        deadline = time.monotonic() + timeout
        for mnt in self._hierarchies():
            top = mnt / rel
            if not top.is_dir():
                continue
            while True:
                left = self._rmtree(top)
                if not left or time.monotonic() > deadline:
                    break
                time.sleep(0.02)

    def remove_empty_parent(self) -> None:
        """rmdir the parent in every hierarchy where nothing is left below it."""
        for mnt in self._hierarchies():
            with contextlib.suppress(OSError):
                (mnt / self.parent).rmdir()

    @staticmethod
    def _rmtree(top: Path) -> bool:
        """One pass of depth-first rmdir; returns True while something is left."""
        dirs = [Path(root) for root, _, _ in os.walk(top)]
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                with contextlib.suppress(OSError):
                    for pid in (d / "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError, ValueError):
                            os.kill(int(pid), signal.SIGKILL)
        return top.exists()
