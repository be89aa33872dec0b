"""An oci container's status from the files its shim and the runtime leave in its directory
(``pid``, ``container.pid``, ``exit.json``, ``runtime.log``), and whether it was OOM-killed.

Why a module: how the driver reads an outcome (a start error from the runtime's log, the
kernel's OOM count in our cgroup, a shim that vanished) is one job, polled by every pod's
worker, apart from starting and stopping containers; its usage (stats) is read from the same
cgroup.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bosun.agent import cgroups
from bosun.agent.runtime.base import ContainerState, ContainerStats, ContainerStatus
from bosun.agent.runtime.disk_state import created_status, read_json, set_exited, set_lost
from bosun.agent.runtime.oci_runtime import runtime_error


def read_status(cid: str, d: Path, meta: dict[str, Any], shim_alive: Callable[[], bool],
                cgroup_tree: cgroups.Cgroups) -> ContainerStatus:
    """The status of container ``cid`` (directory ``d``, record ``meta``)."""
    while True:
        st = created_status(cid, meta)
        done = read_json(d / "exit.json")
        started = 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            started = float((d / "pid").read_text().split()[2])
        ran = (d / "container.pid").exists()
        if done is not None:
            set_exited(st, done, started)
            err = runtime_error(d / "runtime.log") if st.exit_code else ""
            if st.reason == "StartError" or (err and not ran):
                st.reason, st.exit_code = "StartError", 128
                st.message = err or st.message
            elif st.exit_code and oom_killed(cgroup_tree, meta["cgroup"], st.exit_code, d):
                st.reason = "OOMKilled"
                st.message = "the container exceeded its memory limit"
        elif (d / "pid").exists():
            st.started_at = started
            if shim_alive():
                st.state = ContainerState.RUNNING if ran else ContainerState.CREATED
            elif (d / "exit.json").exists():
                continue  # the shim wrote exit.json and ended between our first read and the check
            else:
                set_lost(st)
        return st


def oom_killed(cgroup_tree: cgroups.Cgroups, cg: str, exit_code: int, d: Path) -> bool:
    if cgroup_tree.oom_kills(cg) > 0:
        return True
    # v1 fallback (see Cgroups.memory_limit_hit); a SIGKILL we sent ourselves is no OOM.
    return exit_code == 137 and not (d / "killed").exists() and cgroup_tree.memory_limit_hit(cg)


def container_stats(cid: str, cgroup: str, cgroup_tree: cgroups.Cgroups) -> ContainerStats | None:
    """A running container's CPU time and working set, from our cgroup (its own usage and its
    runtime leaf's); None when the cgroup cannot be read."""
    usage = cgroup_tree.usage(cgroup)
    if usage is None:
        return None
    return ContainerStats(container_id=cid, timestamp=time.time(), cpu_usage_ns=usage[0],
                          memory_working_set_bytes=usage[1])
