"""bosun.agent.runtime.exit_watch with real processes: a kept status lasts exactly as long as
the watched process, and without pidfds nothing is kept and the pod is polled instead."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from bosun.agent.runtime.base import ContainerState, ContainerStatus
from bosun.agent.runtime.exit_watch import FALLBACK_POLL_S, ExitWatch
from bosun.agent.runtime.shim import proc_starttime


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _status(cid: str, state: ContainerState, pod: str = "pod-1") -> ContainerStatus:
    return ContainerStatus(id=cid, pod_uid=pod, name="c", attempt=0, state=state)


async def test_a_running_status_is_kept_until_the_process_exits(sleeper: subprocess.Popen[bytes]) -> None:
    watch = ExitWatch()
    st = _status("c1", ContainerState.RUNNING)
    watch.keep_running(st, sleeper.pid, proc_starttime(sleeper.pid))
    assert watch.get("c1") is st
    sleeper.kill()
    assert await asyncio.wait_for(watch.changed(), 5) == {"pod-1"}
    assert watch.get("c1") is None  # read again from the files
    watch.close()


async def test_an_exited_status_is_kept_and_forget_drops_it() -> None:
    watch = ExitWatch()
    st = _status("c2", ContainerState.EXITED)
    watch.keep_exited(st)
    assert watch.get("c2") is st
    watch.forget("c2")
    assert watch.get("c2") is None


async def test_the_end_of_a_started_container_first_seen_by_a_read_is_reported() -> None:
    """A container started here that ended before any read found it running (no pidfd ever
    watched it) still wakes its pod, once; an old end read by a restarted driver does not."""
    watch = ExitWatch()
    watch.keep_exited(_status("old", ContainerState.EXITED, pod="pod-4"))
    watch.started("c5")
    watch.keep_exited(_status("c5", ContainerState.EXITED, pod="pod-5"))
    assert await asyncio.wait_for(watch.changed(), 5) == {"pod-5"}
    watch.forget("c5")
    watch.keep_exited(_status("c5", ContainerState.EXITED, pod="pod-5"))  # read again: told already
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch.changed(), 0.3)
    watch.close()


async def test_an_end_told_by_the_pidfd_is_not_reported_again_by_the_read(
        sleeper: subprocess.Popen[bytes]) -> None:
    watch = ExitWatch()
    watch.started("c6")
    watch.keep_running(_status("c6", ContainerState.RUNNING, pod="pod-6"), sleeper.pid, proc_starttime(sleeper.pid))
    sleeper.kill()
    assert await asyncio.wait_for(watch.changed(), 5) == {"pod-6"}
    watch.keep_exited(_status("c6", ContainerState.EXITED, pod="pod-6"))  # the worker's read after the wake
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch.changed(), 0.3)
    watch.close()


async def test_a_reused_pid_is_not_watched(sleeper: subprocess.Popen[bytes]) -> None:
    watch = ExitWatch()
    watch.keep_running(_status("c3", ContainerState.RUNNING), sleeper.pid, "1")  # another start time
    assert watch.get("c3") is None
    watch.close()


async def test_without_pidfd_the_pod_is_polled(sleeper: subprocess.Popen[bytes],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    watch = ExitWatch()
    watch.keep_running(_status("c4", ContainerState.RUNNING, "pod-4"), sleeper.pid, proc_starttime(sleeper.pid))
    assert watch.get("c4") is None
    t0 = time.monotonic()
    assert await asyncio.wait_for(watch.changed(), 5) == {"pod-4"}
    assert time.monotonic() - t0 >= FALLBACK_POLL_S * 0.9
    watch.forget("c4")  # not running any more: nothing left to poll, changed() waits again
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch.changed(), FALLBACK_POLL_S * 2)


async def test_a_closed_watch_keeps_nothing_running(sleeper: subprocess.Popen[bytes]) -> None:
    watch = ExitWatch()
    watch.close()
    watch.keep_running(_status("c5", ContainerState.RUNNING), sleeper.pid, proc_starttime(sleeper.pid))
    assert watch.get("c5") is None
