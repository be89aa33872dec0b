"""What the host offers and how it is doing, read from the kernel (/proc, statvfs).

The Node's capacity and conditions must be true to the machine: the scheduler packs pods
by capacity, and the node lifecycle controller evicts on pressure conditions.
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

MAX_PODS = 110
# Pressure thresholds, as kubelet's default hard eviction thresholds.
MEMORY_AVAILABLE_MIN = 100 * 1024 * 1024
DISK_AVAILABLE_MIN_FRACTION = 0.10
PID_USED_MAX_FRACTION = 0.90


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def disk(path: Path) -> tuple[int, int]:
    """(total, available) bytes of the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def pids() -> tuple[int, int]:
    """(in use, maximum) process ids."""
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 32768
    used = sum(1 for e in os.scandir("/proc") if e.name.isdigit())
    return used, pid_max


def node_ip_towards(server_url: str) -> str:
    """The local address the kernel would use to reach the API server: the one other nodes
    and the server can reach us on."""
    host = urlparse(server_url).hostname or "127.0.0.1"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def go_arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x"}.get(m, m)


def machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(p).read_text().strip()
        except OSError:
            continue
    return ""


def os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


@dataclass
class Pressure:
    memory: bool
    disk: bool
    pid: bool


def pressure(data_dir: Path) -> Pressure:
    mem = meminfo()
    total, avail = disk(data_dir)
    used, pid_max = pids()
    return Pressure(memory=mem.get("MemAvailable", MEMORY_AVAILABLE_MIN) < MEMORY_AVAILABLE_MIN,
                    disk=total > 0 and avail / total < DISK_AVAILABLE_MIN_FRACTION,
                    pid=used > pid_max * PID_USED_MAX_FRACTION)
