"""Pod namespaces found again after the agent starts in a new mount namespace.

A pod's network, IPC and UTS namespaces are kept alive by bind mounts on files of its
sandbox directory (podns.py), and mounts belong to the agent's mount namespace. An agent run
with ``ip netns exec`` gets a new mount namespace at every start, so a restarted agent finds
plain files where its pods' namespaces were: new containers of those pods (a restart after a
crash) then fail with ``cannot setns ...: Invalid argument``. At start the driver therefore
mounts each missing namespace again from a container of the pod that still runs (its
processes are inside them). A pod with no running container has lost its namespaces with the
old mount namespace: its sandbox is marked not ready, and the pod worker makes a new one,
as kubelet does when a sandbox dies.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from bosun.agent.runtime.podns import adopt_namespaces

log = logging.getLogger(__name__)


def _in_pod(pid: int, sandbox_id: str) -> bool:
    """``pid`` is alive and one of the pod's processes (not a reused pid)."""
    try:
        return f"/pod{sandbox_id}/" in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def recover(sandboxes: Path, mounted: Iterable[str], pids_of: Callable[[str], list[int]]) -> list[str]:
    """Mount again, or mark not ready, every ready sandbox whose namespace files are not
    mounted; ``pids_of(sandbox_id)`` gives the host pids of its containers. Returns the ids
    of the sandboxes marked not ready."""
    mounted = set(mounted)
    lost = []
    for path in sorted(sandboxes.glob("*/sandbox.json")) if sandboxes.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not data.get("ready"):
            continue
        sid = path.parent.name
        files = {kind: Path(p) for kind, p in (("net", data.get("netns_path")), ("ipc", data.get("ipc_ns")),
                                                ("uts", data.get("uts_ns"))) if p}
        # mountinfo shows resolved paths: a data dir reached through a symlink is still mounted.
        missing = {kind: p for kind, p in files.items() if os.path.realpath(p) not in mounted}
        if not missing:
            continue
        pid = next((p for p in pids_of(sid) if p > 0 and _in_pod(p, sid)), 0)
        if pid:
            try:
                adopt_namespaces(pid, missing)
                log.info("pod sandbox %s: namespaces mounted again from its process %d", sid, pid)
                continue
            except OSError as e:
                log.warning("pod sandbox %s: cannot mount its namespaces again: %s", sid, e)
        data["ready"] = False
        path.write_text(json.dumps(data))
        lost.append(sid)
        log.warning("pod sandbox %s lost its namespaces (no container left in them): it will be made again", sid)
    return lost
