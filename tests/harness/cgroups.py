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

from bosun.agent.cgroups import CGROUP_ROOT, Cgroups, is_v2


def _mounts() -> list[Path]:
    """Every cgroup mount point (v1 hierarchies and cgroup2)."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split()[:1] in (["cgroup"], ["cgroup2"]):
            out.append(Path(pre.split()[4]))
    return out


def tracking_root() -> Path:
    """The hierarchy processes are placed in: cgroup2, or v1's pids controller."""
    if is_v2():
        return CGROUP_ROOT
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields = post.split()
        if fields[:1] == ["cgroup"] and "pids" in fields[2].split(","):
            return Path(pre.split()[4])
    raise RuntimeError("no cgroup2 and no v1 pids hierarchy mounted: the harness cannot track processes")


def make(rel: str) -> Path:
    """Create ``rel`` in the tracking hierarchy; returns its cgroup.procs file."""
    d = tracking_root() / rel
    d.mkdir(parents=True, exist_ok=True)
    return d / "cgroup.procs"


def wrap(rel: str, argv: list[str]) -> list[str]:
    """``argv`` started inside cgroup ``rel``: the shell joins it, then execs the command."""
    procs = make(rel)
    return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *argv]


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
