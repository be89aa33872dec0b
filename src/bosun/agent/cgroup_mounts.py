"""Make the cgroup hierarchy visible to the OCI runtime when the agent runs in a fresh /sys.

``ip netns exec NS bosun agent`` (how people try several nodes on one machine, and how the
multi-node test harness starts its nodes) unshares the mount namespace and mounts a new
sysfs on /sys, so that /sys/class/net shows the namespace's own links. That hides the cgroup
mounts under /sys/fs/cgroup: crun then refuses every container with ``invalid file system
type on '/sys/fs/cgroup'`` (it wants cgroup2 there, or a tmpfs with v1 hierarchies below).

:func:`ensure_cgroup_mounts` puts the machine's layout back in the agent's own mount
namespace: the cgroup mounts of the initial mount namespace (read from /proc/1/mountinfo,
mounting a cgroup hierarchy again attaches the same hierarchy), or when that cannot be read
the conventional layout for the hierarchies /proc/self/cgroup names (v1, hybrid or v2).
``ip netns exec`` makes ``/`` a recursive slave, so mounts made here never reach the parent
namespace; if /sys is still a shared mount (someone else's setup), the agent first unshares
a mount namespace of its own, so nothing outside it is ever touched.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"
CLONE_NEWNS = 0x00020000
_FSTYPES = ("tmpfs", "cgroup", "cgroup2")


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str
    source: str
    options: str  # per-mount options and the superblock's, as `mount -o` takes them
    propagation: tuple[str, ...]  # optional fields of mountinfo: shared:N, master:N


def parse_mountinfo(text: str) -> list[Mount]:
    out = []
    for line in text.splitlines():
        pre, sep, post = line.partition(" - ")
        head, tail = pre.split(), post.split()
        if not sep or len(head) < 6 or len(tail) < 3:
            continue
        opts = [o for o in head[5].split(",") + tail[2].split(",") if o not in ("ro", "rw")]
        rw = "ro" if "ro" in head[5].split(",") else "rw"
        options = ",".join(dict.fromkeys([rw, *opts]))  # no duplicates, order kept
        out.append(Mount(head[4], tail[0], tail[1], options, tuple(head[6:])))
    return out


def _read_mounts(pid: str) -> list[Mount] | None:
    try:
        return parse_mountinfo(Path(f"/proc/{pid}/mountinfo").read_text())
    except OSError:
        return None


def cgroups_visible(mounts: list[Mount]) -> bool:
    """cgroup2 on /sys/fs/cgroup, or v1 hierarchies below it: a layout runtimes accept."""
    return any((m.fstype == "cgroup2" and m.mount_point == CGROUP_ROOT)
               or (m.fstype == "cgroup" and m.mount_point.startswith(CGROUP_ROOT + "/")) for m in mounts)


_FLAGS = "rw,nosuid,nodev,noexec,relatime"


def layout_from_membership(text: str) -> list[Mount]:
    """The conventional layout for the hierarchies a process belongs to (/proc/self/cgroup):
    only ``0::/...`` is pure cgroup v2; v1 lines (``4:memory:/...``, ``1:name=systemd:/``)
    mean a tmpfs with one mount per hierarchy, plus cgroup2 on ``unified`` when both appear."""
    v1, v2 = [], False
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and not parts[1]:
            v2 = True
        elif parts[1]:
            v1.append(parts[1])
    if not v1:
        return [Mount(CGROUP_ROOT, "cgroup2", "cgroup2", _FLAGS, ())] if v2 else []
    out = [Mount(CGROUP_ROOT, "tmpfs", "tmpfs", "rw,nosuid,nodev,noexec,mode=755", ())]
    for controllers in v1:
        name = controllers.removeprefix("name=")
        out.append(Mount(f"{CGROUP_ROOT}/{name}", "cgroup", "cgroup", f"{_FLAGS},{controllers}", ()))
    if v2:
        out.append(Mount(f"{CGROUP_ROOT}/unified", "cgroup2", "cgroup2", _FLAGS, ()))
    return out


def wanted_layout(host: list[Mount] | None, membership: str = "") -> list[Mount]:
    """The cgroup mounts of the host (the tmpfs first, then each hierarchy below it); when
    they cannot be read, the layout our own cgroup membership implies; else a cgroup2."""
    if host:
        layout = [m for m in host if m.fstype in _FSTYPES
                  and (m.mount_point == CGROUP_ROOT or m.mount_point.startswith(CGROUP_ROOT + "/"))]
        if cgroups_visible(layout):
            return sorted(layout, key=lambda m: m.mount_point.count("/"))
    return layout_from_membership(membership) or [Mount(CGROUP_ROOT, "cgroup2", "cgroup2", _FLAGS, ())]


def _private_namespace(own: list[Mount]) -> None:
    """A mount namespace of our own when /sys would propagate mounts to others."""
    sys_mount = next((m for m in reversed(own) if m.mount_point == "/sys"), None)
    if sys_mount is None or not any(p.startswith("shared:") for p in sys_mount.propagation):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS): " + os.strerror(ctypes.get_errno()))
    _mount("--make-rslave", "/")


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {done.stderr.strip()}")


def ensure_cgroup_mounts() -> bool:
    """Mount the cgroup hierarchy on /sys/fs/cgroup if this mount namespace lacks it (see the
    module docstring). Returns whether it mounted anything. Must run before the agent starts
    threads (an unshare of the mount namespace needs a single-threaded process)."""
    own = _read_mounts("self")
    if own is None or cgroups_visible(own) or os.geteuid() != 0:  # not root: no OCI runtime either
        return False
    try:
        membership = Path("/proc/self/cgroup").read_text()
    except OSError:
        membership = ""
    layout = wanted_layout(_read_mounts("1"), membership)
    _private_namespace(own)
    for m in layout:
        os.makedirs(m.mount_point, exist_ok=True)
        _mount("-t", m.fstype, "-o", m.options, m.source, m.mount_point)
    log.info("mounted the cgroup hierarchy on %s (hidden by a fresh /sys)", CGROUP_ROOT)
    return True
