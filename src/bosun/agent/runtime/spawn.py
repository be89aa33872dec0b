"""Run short helper commands (CNI plugins, unshare, the OCI runtime's kill/delete) and start
shims from a small thread pool instead of the event loop.

Why: starting a process blocks its caller until the child has exec'd (subprocess waits on
its error pipe), and asyncio's default child watcher adds a thread per child. With 100 pods
starting at once on 2 busy cores the agent's event loop spent ~15% of its time inside
fork/exec, delaying every other pod's work and the API server sharing the loop in
`bosun up`. In the pool the wait happens without the GIL, and the pool's size also bounds how
many helpers run at once, which is all 2 cores can use anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bosun-spawn")


async def in_pool(fn: Callable[[], T]) -> T:
    """``fn()`` in the spawn pool (for process starts that must not block the loop)."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn)


async def run(cmd: list[str], *, input: bytes | None = None, env: dict[str, str] | None = None,
              timeout: float = 30.0, merge_stderr: bool = False) -> tuple[int, bytes, bytes]:  # noqa: ASYNC109
    """(exit code, stdout, stderr) of ``cmd``; exit code 124 with a message on timeout,
    127 when the program cannot be run."""

    def call() -> tuple[int, bytes, bytes]:
        try:
            res = subprocess.run(cmd, input=input, env=env, capture_output=not merge_stderr,
                                 stdout=subprocess.PIPE if merge_stderr else None,
                                 stderr=subprocess.STDOUT if merge_stderr else None,
                                 stdin=None if input is not None else subprocess.DEVNULL,
                                 timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, b"", f"{cmd[0]} timed out".encode()
        except OSError as e:
            return 127, b"", f"{cmd[0]}: {e.strerror or e}".encode()
        return res.returncode, res.stdout or b"", res.stderr or b""

    return await in_pool(call)


async def run_in_session(cmd: list[str], *, timeout: float,  # noqa: ASYNC109
                         on_timeout: Callable[[], None] | None = None) -> tuple[int, bytes]:
    """(exit code, stdout and stderr merged) of ``cmd`` started in a session of its own; once
    ``timeout`` passed its process group is killed, then ``on_timeout()`` runs (to kill what
    it started elsewhere, e.g. in a container), and TimeoutError is raised without waiting
    for whatever may still hold its output open. 128+N when killed by signal N.
    For exec probes: with asyncio's subprocess each cost the loop a child-watcher thread and
    several callbacks; here the whole run is one hop to the pool."""

    def call() -> tuple[int, bytes]:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            if on_timeout is not None:
                with contextlib.suppress(OSError):
                    on_timeout()
            assert proc.stdout is not None
            proc.stdout.close()
            proc.wait()
            raise TimeoutError(f"{cmd[0]} timed out after {timeout:g}s") from None
        code = proc.returncode
        return (128 - code if code < 0 else code), out

    return await in_pool(call)
