"""What a node holds for pods it no longer runs, found in the runtime and the data dir and
removed: at start (pods deleted while the agent was down, a stop cut short by SIGKILL or a
second Ctrl-C), at the end of a drain, and by ``bosun agent --cleanup`` / ``bosun up --reset``.

Why the runtime's own lists and not memory: after a SIGKILL nothing else is known. The
driver's records on disk name every container (with its shim and cgroup) and every sandbox
(with its namespace mounts, CNI attachment and cgroup); removing them through the driver
releases all of that. Pod directories (volumes, tmpfs emptyDirs) come last. Everything runs
in parallel: 40 orphans stopped one by one with 2 s each held the restarted agent's pods
back by over a minute.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from bosun.agent.runtime.base import ContainerState, RuntimeDriver
from bosun.agent.volumes import remove_pod_volumes

log = logging.getLogger(__name__)
ORPHAN_GRACE = 2.0
"""SIGTERM to SIGKILL for a container whose pod is gone: its grace period went with it."""


@dataclass
class Removed:
    containers: int = 0
    sandboxes: int = 0
    pod_dirs: int = 0

    def __str__(self) -> str:
        return f"{self.containers} container(s), {self.sandboxes} pod sandbox(es), {self.pod_dirs} pod dir(s)"


async def remove_pods(driver: RuntimeDriver, pods_dir: Path, keep: Collection[str] = (),
                      grace: float = ORPHAN_GRACE) -> Removed:
    """Stop and remove every container and sandbox of pods whose uid is not in ``keep``,
    then their pod directories; failures are logged and the rest still removed."""
    done = Removed()
    containers = [st for st in await driver.list_containers() if st.pod_uid not in keep]

    async def container(cid: str, live: bool) -> None:
        if live:
            await driver.stop_container(cid, grace)
        await driver.remove_container(cid)

    results = await asyncio.gather(*(container(st.id, st.state in (ContainerState.RUNNING, ContainerState.CREATED))
                                     for st in containers), return_exceptions=True)
    done.containers = _count(results, "container")
    sandboxes = [sb for sb in await driver.list_sandboxes() if sb.pod_uid not in keep]

    async def sandbox(sid: str) -> None:
        await driver.stop_sandbox(sid)
        await driver.remove_sandbox(sid)

    results = await asyncio.gather(*(sandbox(sb.id) for sb in sandboxes), return_exceptions=True)
    done.sandboxes = _count(results, "pod sandbox")
    done.pod_dirs = await asyncio.to_thread(_remove_pod_dirs, pods_dir, keep)
    return done


def _remove_pod_dirs(pods_dir: Path, keep: Collection[str]) -> int:
    dirs = [d for d in pods_dir.iterdir() if d.is_dir() and d.name not in keep] if pods_dir.is_dir() else []
    for d in dirs:
        remove_pod_volumes(d)
        shutil.rmtree(d, ignore_errors=True)
    return len(dirs)


def _count(results: Sequence[object], what: str) -> int:
    for r in results:
        if isinstance(r, BaseException):
            log.warning("cannot remove a %s: %s", what, r)
    return sum(1 for r in results if not isinstance(r, BaseException))
