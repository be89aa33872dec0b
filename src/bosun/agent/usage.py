"""Cumulative CPU time and memory working set, read from the kernel.

Two sources, one meaning: CPU as nanoseconds used since some fixed point (rates come from two
readings, see :mod:`bosun.agent.stats`), memory as the *working set* (what the kernel could
not reclaim under pressure: usage minus inactive file cache), the figure kubelet, the OOM
killer's view and ``kubectl top`` agree on. Nodes read /proc; containers in a cgroup (the oci
driver) read their cgroup, v2 or v1, so drivers do not each parse cgroup files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_ns: int
    working_set_bytes: int
    usage_bytes: int = 0
    rss_bytes: int = 0


def _kv_file(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def node_cpu_ns(stat_path: Path = Path("/proc/stat")) -> int:
    """CPU time spent doing work (everything but idle and iowait) over all CPUs."""
    for line in stat_path.read_text().splitlines():
        if line.startswith("cpu "):
            f = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest is inside user already)
            busy = f[0] + f[1] + f[2] + sum(f[5:8])
            return busy * 1_000_000_000 // _CLK_TCK
    raise OSError(f"no cpu line in {stat_path}")


def node_memory(meminfo_path: Path = Path("/proc/meminfo")) -> tuple[int, int, int]:
    """(total, usage, working set) bytes. Usage leaves out free pages only; the working set
    also leaves out inactive file cache, as kubelet's node summary does."""
    info = _kv_file(meminfo_path)
    total = info.get("MemTotal", 0) * 1024
    usage = total - info.get("MemFree", 0) * 1024
    working = max(usage - info.get("Inactive(file)", 0) * 1024, 0)
    return total, usage, working


def node_usage() -> Usage:
    _total, usage, working = node_memory()
    return Usage(cpu_ns=node_cpu_ns(), working_set_bytes=working, usage_bytes=usage)


def cgroup_v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def cgroup_usage(cgroup: str, root: Path = CGROUP_ROOT) -> Usage | None:
    """Usage of the cgroup at ``cgroup`` (a path like ``/bosun/pod-x/ctr``, relative to the
    hierarchy root), v2 or v1; None when it does not exist (the container is gone)."""
    rel = cgroup.strip("/")
    if (root / "cgroup.controllers").exists():
        return _v2(root / rel)
    return _v1(root, rel)


def _v2(d: Path) -> Usage | None:
    cpu = _kv_file(d / "cpu.stat")
    if "usage_usec" not in cpu:
        return None
    mem = _kv_file(d / "memory.stat")
    try:
        current = int((d / "memory.current").read_text())
    except (OSError, ValueError):
        current = 0
    working = max(current - mem.get("inactive_file", 0), 0)
    return Usage(cpu_ns=cpu["usage_usec"] * 1000, working_set_bytes=working, usage_bytes=current,
                 rss_bytes=mem.get("anon", 0))


def _v1(root: Path, rel: str) -> Usage | None:
    cpu_file = next((root / c / rel / "cpuacct.usage" for c in ("cpuacct", "cpu,cpuacct", "cpu")
                     if (root / c / rel / "cpuacct.usage").exists()), None)
    if cpu_file is None:
        return None
    try:
        cpu_ns = int(cpu_file.read_text())
    except (OSError, ValueError):
        return None
    mdir = root / "memory" / rel
    mem = _kv_file(mdir / "memory.stat")
    try:
        current = int((mdir / "memory.usage_in_bytes").read_text())
    except (OSError, ValueError):
        current = 0
    inactive = mem.get("total_inactive_file", mem.get("inactive_file", 0))
    return Usage(cpu_ns=cpu_ns, working_set_bytes=max(current - inactive, 0), usage_bytes=current,
                 rss_bytes=mem.get("total_rss", mem.get("rss", 0)))


def boot_time() -> float:
    """Seconds since the epoch when the node booted (the node's startTime in summaries)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0
