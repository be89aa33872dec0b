"""Shims forked by the node's zygote: they run containers like exec'd shims, outlive the
zygote, and a dead zygote is replaced (or bypassed) without the caller noticing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bosun.agent.runtime.shim import proc_starttime
from bosun.agent.runtime.shim_start import ShimStarter

pytestmark = pytest.mark.timeout(30)


def _state(root: Path, name: str, command: list[str]) -> Path:
    d = root / name
    d.mkdir()
    (d / "spec.json").write_text(json.dumps({"command": command, "env": {"PATH": "/usr/bin:/bin"},
                                             "log_path": str(d / "log")}))
    return d


async def _until(cond: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
async def starter(tmp_path: Path) -> AsyncIterator[ShimStarter]:
    s = ShimStarter(tmp_path / "state")
    try:
        yield s
    finally:
        s.close()


async def test_forked_shim_runs_its_container_and_reports_by_files(tmp_path: Path, starter: ShimStarter) -> None:
    a = _state(tmp_path, "a", ["sh", "-c", "echo hello; exit 3"])
    proc = await starter.start(a)
    assert proc.forked and starter.zygote_pid
    assert proc.pid != os.getpid()
    await _until(lambda: (a / "exit.json").exists())
    assert json.loads((a / "exit.json").read_text())["exit_code"] == 3
    assert "stdout F hello" in (a / "log").read_text()
    b = _state(tmp_path, "b", ["sleep", "30"])
    shim = await starter.start(b)
    try:
        await _until(lambda: (b / "pid").exists())
        assert shim.poll() is None
        assert _ppid(shim.pid) == starter.zygote_pid  # not the agent's child
        assert os.getsid(shim.pid) == shim.pid  # its own session: the agent's signals miss it
    finally:
        os.kill(shim.pid, signal.SIGKILL)


async def test_shims_outlive_the_zygote_which_is_started_again(tmp_path: Path, starter: ShimStarter) -> None:
    a = _state(tmp_path, "a", ["sleep", "30"])
    shim = await starter.start(a)
    first = starter.zygote_pid
    await _until(lambda: (a / "pid").exists())
    os.kill(first, signal.SIGKILL)
    await asyncio.sleep(0.1)
    assert shim.poll() is None and proc_starttime(shim.pid) == shim.starttime
    b = _state(tmp_path, "b", ["true"])
    again = await starter.start(b)
    assert again.forked and starter.zygote_pid not in (0, first)
    await _until(lambda: (b / "exit.json").exists())
    pid = int((a / "pid").read_text().split()[0])
    os.kill(pid, signal.SIGTERM)
    await _until(lambda: (a / "exit.json").exists())
    assert json.loads((a / "exit.json").read_text())["reason"] == "Error"


async def test_zygote_stops_when_closed_and_exec_is_the_fallback(tmp_path: Path) -> None:
    starter = ShimStarter(tmp_path / "state")
    a = _state(tmp_path, "a", ["true"])
    await starter.start(a)
    zygote = starter.zygote_pid
    starter.close()
    await _until(lambda: not proc_starttime(zygote))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    broken = ShimStarter(not_a_dir)  # no socket can be made there: shims are exec'd instead
    b = _state(tmp_path, "b", ["sh", "-c", "echo fallback"])
    proc = await broken.start(b)
    assert not proc.forked and proc.popen is not None
    await _until(lambda: (b / "exit.json").exists())
    assert "fallback" in (b / "log").read_text()
    assert proc.popen.wait(5) == 0
    broken.close()


async def test_forked_shim_says_when_its_command_runs(tmp_path: Path, starter: ShimStarter) -> None:
    a = _state(tmp_path, "a", ["sleep", "30"])
    shim = await starter.start(a)
    try:
        await asyncio.wait_for(shim.wait_started(10.0), 5.0)
        assert (a / "pid").exists() and not (a / "exit.json").exists()
    finally:
        os.kill(shim.pid, signal.SIGKILL)
    bad = _state(tmp_path, "bad", ["/no/such/program"])
    failed = await starter.start(bad)
    await asyncio.wait_for(failed.wait_started(10.0), 5.0)  # the end of the stream: it exited
    await _until(lambda: (bad / "exit.json").exists())
    assert json.loads((bad / "exit.json").read_text())["reason"] == "StartError"


async def test_long_state_paths_still_reach_the_zygote(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    starter = ShimStarter(deep)
    try:
        a = _state(tmp_path, "a", ["true"])
        proc = await starter.start(a)
        assert proc.forked
        await _until(lambda: (a / "exit.json").exists())
    finally:
        starter.close()
