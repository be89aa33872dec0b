"""Ending an oci container: stopping it (SIGTERM, SIGKILL after the grace period) and removing
what it leaves (the runtime's state, the rootfs mount, our cgroup, its directory).

Why a module: the end of a container is where a node stopping 100 pods spends its time, so
it is tuned on its own (signals sent directly instead of a runtime process each, waits that
poll less as they go on, file work off the loop), apart from how containers are made and read.
The driver hands over a :class:`Container`: what these steps need to know of one container.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bosun.agent import cgroups
from bosun.agent.runtime import spawn
from bosun.agent.runtime.oci_mounts import unmount
from bosun.agent.trash import Trash
from bosun.aio import off_loop


@dataclass
class Container:
    id: str
    dir: Path  # containers/<id>: pid, container.pid, exit.json, meta.json, bundle/
    runtime: list[str]  # argv of the runtime that made it, up to its subcommand
    cgroup: str  # ours (from meta.json); "" when unknown
    shim_alive: Callable[[], bool]
    started_here: bool  # its shim is this agent's child (started, not yet seen to end)


def _pid(c: Container) -> int:
    try:
        return int((c.dir / "container.pid").read_text().strip())
    except (OSError, ValueError):
        return 0


def _ended(c: Container) -> bool:
    return (c.dir / "exit.json").exists() or not c.shim_alive()


async def _wait_exit(c: Container, seconds: float) -> bool:
    """Polled, at 20 ms first and less often as the wait goes on: 100 pods in their
    30 s grace period polled every 20 ms were 5,000 checks a second on the loop."""
    deadline = time.monotonic() + max(0.0, seconds)
    step = 0.02
    while True:
        if _ended(c):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(step, left))
        step = min(step * 1.5, 0.25)


def _signal(c: Container, sig: int) -> bool:
    """Signal the container's init process ourselves, as ``<runtime> kill`` would, when
    its pid surely is that process (it is in the container's cgroup, so not a reused
    pid); False to leave it to the runtime. Why: a node stopping 100 pods ran 200
    runtime processes through the spawn pool, and the last pods waited 15 s for theirs."""
    pid = _pid(c)
    if pid <= 0 or not c.cgroup:
        return False
    try:
        if f"/{c.cgroup}/" not in Path(f"/proc/{pid}/cgroup").read_text():
            return False
        os.kill(pid, sig)
    except OSError:
        return False
    return True


async def stop(c: Container, grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_seconds``; returns once it has ended. Nothing for a
    container that ended, or was created and never started."""
    d = c.dir
    if (d / "exit.json").exists() or not (d / "meta.json").exists():
        return
    if not (d / "pid").exists() and not c.started_here:
        return  # created, never started
    # A container still being set up by the runtime cannot be signalled yet.
    for _ in range(500):
        if (d / "container.pid").exists() or _ended(c):
            break
        await asyncio.sleep(0.01)
    for sig, wait in (("TERM", grace_seconds), ("KILL", 10.0)):
        if _ended(c):
            break
        if sig == "KILL":
            (d / "killed").touch()
        if not _signal(c, signal.SIGKILL if sig == "KILL" else signal.SIGTERM):
            await spawn.run([*c.runtime, "kill", c.id, sig], timeout=10, merge_stderr=True)
        if await _wait_exit(c, wait):
            break


async def remove_files(c: Container, state_root: Path, cgroup_tree: cgroups.Cgroups, trash: Trash) -> None:
    """What an ended (or stopped) container leaves: the runtime's state, the rootfs mount,
    our cgroup and its directory (the directories go to the trash, deleted later)."""
    if (c.dir / "exit.json").exists() and not c.shim_alive():
        # Ended and reaped: all that `<runtime> delete` would do is remove its state
        # dir and the cgroup, which goes below with ours. One runtime process less per
        # container (a node stopping 100 pods queued 100 of them behind its CNI DELs).
        trash.discard(state_root / c.id)
    else:
        await spawn.run([*c.runtime, "delete", "--force", c.id], timeout=10, merge_stderr=True)
    # Off the loop: with hundreds of mounts an umount takes milliseconds, and a node
    # stopping 100 pods does hundreds of them (its progress reports came 10 s late).
    await off_loop(lambda: unmount(str(c.dir / "bundle" / "rootfs")))
    if c.cgroup:
        await asyncio.to_thread(cgroup_tree.remove, c.cgroup)
    trash.discard(c.dir)


__all__ = ["Container", "remove_files", "stop"]
