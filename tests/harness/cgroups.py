"""The harness's cgroups: every process it starts lives below ``bnhID`` in the cgroup tree.

The server and each agent are placed (by a one-line ``sh`` wrapper, before they exec) in
``bnhID/server`` and ``bnhID/<node>/agent``; each agent's pods get ``bnhID/<node>/pods`` as
their cgroup parent. So "every process of node n1" is the cgroup ``bnhID/n1`` (agent, its
shims, every container), and "everything of the harness" is ``bnhID``: a node's death and the
teardown are one recursive kill-and-rmdir, and a sweep finds what a crashed run left behind
without trusting pid files. On cgroup v1 processes are tracked in the ``pids`` hierarchy
(the memory one is left alone: the machine's own limits stay in force).
"""

from __future__ import annotations

import os
from pathlib import Path

from bosun.agent.cgroup_mounts import Mount, parse_mountinfo
from bosun.agent.cgroups import CGROUP_ROOT, Cgroups, is_v2


def _cgroup_mounts() -> list[Mount]:
    return [m for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text()) if m.fstype in ("cgroup", "cgroup2")]


def _mounts() -> list[Path]:
    """Every cgroup mount point (v1 hierarchies and cgroup2)."""
    return [Path(m.mount_point) for m in _cgroup_mounts()]


def tracking_root() -> Path:
    """The hierarchy processes are placed in: cgroup2, or v1's pids controller."""
    if is_v2():
        return CGROUP_ROOT
    for m in _cgroup_mounts():
        if m.fstype == "cgroup" and "pids" in m.options.split(","):
            return Path(m.mount_point)
    raise RuntimeError("no cgroup2 and no v1 pids hierarchy mounted: the harness cannot track processes")


def _roots() -> list[Path]:
    """The tracking hierarchy, and a cgroup2 mounted beside v1 ones (a hybrid host): what a
    process makes below its own cgroup2 (the agent's nginx does) is then inside ``rel`` too,
    and goes with it."""
    roots = [tracking_root()]
    for m in _cgroup_mounts():
        if m.fstype == "cgroup2" and Path(m.mount_point) not in roots:
            roots.append(Path(m.mount_point))
    return roots


def make(rel: str) -> list[Path]:
    """Create ``rel`` in the tracking hierarchies; returns their cgroup.procs files."""
    out = []
    for root in _roots():
        (root / rel).mkdir(parents=True, exist_ok=True)
        out.append(root / rel / "cgroup.procs")
    return out


def wrap(rel: str, argv: list[str]) -> list[str]:
    """``argv`` started inside cgroup ``rel``: the shell joins it, then execs the command."""
    joins = " && ".join(f"echo $$ > {procs}" for procs in make(rel))
    return ["sh", "-c", f'{joins} && exec "$@"', "sh", *argv]


def pids(rel: str) -> list[int]:
    """Processes anywhere below ``rel`` (in any hierarchy)."""
    out: set[int] = set()
    for mnt in _mounts():
        top = mnt / rel
        if not top.is_dir():
            continue
        for root, _, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    out.update(int(p) for p in (Path(root) / "cgroup.procs").read_text().split())
                except OSError:
                    continue
    return sorted(out)


def destroy(rel: str, timeout: float = 10.0) -> None:
    """SIGKILL everything below ``rel`` and remove it from every hierarchy (idempotent)."""
    Cgroups(rel).remove(rel, timeout=timeout)


def leftovers(prefix: str) -> list[str]:
    """Top-level cgroups whose name starts with ``prefix``, as ``mount/name``."""
    out = []
    for mnt in _mounts():
        with os.scandir(mnt) as it:
            out += [f"{mnt}/{e.name}" for e in it if e.is_dir() and e.name.startswith(prefix)]
    return out
