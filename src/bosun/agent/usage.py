"""The node's cumulative CPU time and memory working set, read from /proc.

Same meaning as the containers' figures (which each runtime driver's ``stats`` reads: the
oci driver from its cgroups via :mod:`bosun.agent.cgroups`, the process driver from /proc):
CPU as nanoseconds used since a fixed point (rates come from two readings, see
:mod:`bosun.agent.stats`), memory as the *working set* (usage minus inactive file cache,
what the kernel could not reclaim under pressure), the figure kubelet and ``kubectl top`` use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bosun.agent.kvfiles import int_fields

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_ns: int
    working_set_bytes: int
    usage_bytes: int = 0


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
    info = int_fields(meminfo_path)
    total = info.get("MemTotal", 0) * 1024
    usage = total - info.get("MemFree", 0) * 1024
    working = max(usage - info.get("Inactive(file)", 0) * 1024, 0)
    return total, usage, working


def node_usage() -> Usage:
    _total, usage, working = node_memory()
    return Usage(cpu_ns=node_cpu_ns(), working_set_bytes=working, usage_bytes=usage)


def boot_time() -> float:
    """Seconds since the epoch when the node booted (the node's startTime in summaries)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def node_fs(path: Path) -> tuple[int, int, int]:
    """(capacity, used, available) bytes of the filesystem holding ``path`` (the agent's
    data: pod volumes, logs), kubelet's node ``fs``."""
    st = os.statvfs(path)
    capacity = st.f_blocks * st.f_frsize
    return capacity, capacity - st.f_bfree * st.f_frsize, st.f_bavail * st.f_frsize


def node_network(dev_path: Path = Path("/proc/net/dev")) -> tuple[int, int]:
    """(received, transmitted) bytes over every interface but loopback, in this network namespace."""
    rx = tx = 0
    for line in dev_path.read_text().splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = rest.split()
        if len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def dir_bytes(path: Path) -> int:
    """Bytes allocated to the files under ``path`` on its own filesystem (``du -sx``: volume
    mounts of other filesystems under it are not counted); 0 when it does not exist."""
    try:
        dev = path.lstat().st_dev
    except OSError:
        return 0
    total = 0
    stack = [str(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != dev:
                continue
            total += st.st_blocks * 512
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
    return total
