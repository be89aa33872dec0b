"""A pod's shared process namespace (``shareProcessNamespace: true``) for the oci driver.

Why a process: unlike network, IPC and UTS namespaces (kept by bind mounts, see podns), a PID
namespace dies with its first process, and a namespace without one cannot take new members.
So a shared one is held by a tiny PID 1 of its own, as the pause container does in
Kubernetes: ``unshare --pid --fork --kill-child sleep infinity`` in a session of its own
(it outlives agent restarts), and every container of the pod joins ``/proc/<that sleep>/ns/pid``.
Removing the sandbox kills the holder, and with it whatever still ran in the namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bosun.agent.runtime.disk_state import alive
from bosun.agent.runtime.shim import proc_starttime

HOLDER = ["unshare", "--pid", "--fork", "--kill-child", "--", "sleep", "infinity"]


def start() -> dict[str, Any]:
    """Start a holder; returns what the sandbox record keeps: the holder's and its PID 1's
    pids and start times, and the namespace's path."""
    proc = subprocess.Popen(HOLDER, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 5
    init = 0
    while not init:
        with contextlib.suppress(OSError, ValueError):
            forked = children.read_text().split()  # empty until unshare has forked its child
            init = int(forked[0]) if forked else 0
        if not init:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise OSError(f"the pod's process namespace holder did not start (exit {proc.poll()})")
            time.sleep(0.002)
    return {"pid": proc.pid, "pid_start": proc_starttime(proc.pid), "init": init,
            "init_start": proc_starttime(init), "path": f"/proc/{init}/ns/pid"}


def running(holder: dict[str, Any]) -> bool:
    return alive(int(holder.get("init") or 0), str(holder.get("init_start") or ""))


def stop(holder: dict[str, Any]) -> None:
    """Kill the holder and its PID 1 (the kernel then kills the rest of the namespace)."""
    for key, start_key in (("init", "init_start"), ("pid", "pid_start")):
        pid = int(holder.get(key) or 0)
        if alive(pid, str(holder.get(start_key) or "")):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    pid = int(holder.get("pid") or 0)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)  # ours when started by this agent: no zombie left
