"""The process driver runs real host processes that outlive the driver object (agent restarts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bosun.agent.runtime.base import (
    ContainerConfig,
    ContainerState,
    PullPolicy,
    RuntimeDriver,
    SandboxConfig,
    StartError,
)
from bosun.agent.runtime.process import ProcessDriver

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[ProcessDriver]:
    d = ProcessDriver(tmp_path / "rt", "127.0.0.1")
    await d.start()
    try:
        yield d
    finally:
        for c in await d.list_containers():
            await d.remove_container(c.id)
        await d.close()


async def _run(d: ProcessDriver, tmp: Path, name: str, cmd: list[str]) -> str:
    sb = await d.run_sandbox(SandboxConfig(pod_uid="uid1", pod_name="p", namespace="ns", hostname="p",
                                           pod_dir=tmp / "pod"))
    img = await d.ensure_image("busybox", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, ContainerConfig(name=name, pod_uid="uid1", attempt=0, image="busybox",
                                                       command=cmd, env=[("GREETING", "hi")],
                                                       log_path=tmp / "logs" / f"{name}.log"), img)
    await d.start_container(cid)
    return cid


async def _wait_exit(d: ProcessDriver, cid: str) -> None:
    for _ in range(500):
        st = await d.container_status(cid)
        if st and st.state == ContainerState.EXITED:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("container did not exit")


async def test_runs_logs_and_exit_code(driver: ProcessDriver, tmp_path: Path) -> None:
    assert isinstance(driver, RuntimeDriver)
    cid = await _run(driver, tmp_path, "c", ["sh", "-c", 'echo "$GREETING"; echo oops >&2; exit 3'])
    await _wait_exit(driver, cid)
    st = await driver.container_status(cid)
    assert st is not None and st.exit_code == 3 and st.reason == "Error"
    lines = (tmp_path / "logs" / "c.log").read_text().splitlines()
    assert sorted(line.split(" ", 1)[1] for line in lines) == ["stderr F oops", "stdout F hi"]


async def test_missing_command_is_start_error(driver: ProcessDriver, tmp_path: Path) -> None:
    with pytest.raises(StartError, match="no-such-binary"):
        await _run(driver, tmp_path, "c", ["no-such-binary-xyz"])


async def test_stop_sigterm_then_sigkill_and_readoption(driver: ProcessDriver, tmp_path: Path) -> None:
    cid = await _run(driver, tmp_path, "c", ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    # A fresh driver over the same directory (agent restart) sees the running container.
    again = ProcessDriver(tmp_path / "rt", "127.0.0.1")
    found = await again.list_containers("uid1")
    assert [(c.id, c.name, c.state) for c in found] == [(cid, "c", ContainerState.RUNNING)]
    stats = await again.stats(cid)
    assert stats is not None and stats.memory_working_set_bytes > 0
    proc = await again.exec(cid, ["sh", "-c", "echo $GREETING"])
    assert (await proc.stdout.read()).strip() == b"hi" and await proc.wait() == 0
    await again.stop_container(cid, 0.3)  # TERM is ignored: KILL after the grace period
    st = await again.container_status(cid)
    assert st is not None and st.state == ContainerState.EXITED and st.exit_code == 137


async def test_status_read_racing_the_shims_exit_keeps_the_exit_code(
        driver: ProcessDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shim writes exit.json and then ends. A status read that finds no exit.json yet,
    and then finds the shim gone, must look again rather than report the exit as lost (255)."""
    cid = await _run(driver, tmp_path, "c", ["sh", "-c", "exit 7"])
    await _wait_exit(driver, cid)
    exit_json = tmp_path / "rt" / "containers" / cid / "exit.json"
    assert exit_json.exists()
    held = exit_json.with_name("exit.json.held")
    exit_json.rename(held)

    def shim_ends_now(container_id: str) -> bool:
        if held.exists():
            held.rename(exit_json)  # the shim's last write lands between the two reads
        return False

    # A driver that has not seen this container yet reads its files (as after an agent
    # restart); the one that watched the exit keeps the status it read then.
    fresh = ProcessDriver(tmp_path / "rt", "127.0.0.1")
    await fresh.start()
    try:
        monkeypatch.setattr(fresh, "_shim_alive", shim_ends_now)
        st = await fresh.container_status(cid)
        assert st is not None and (st.state, st.exit_code, st.reason) == (ContainerState.EXITED, 7, "Error")
    finally:
        await fresh.close()
    # Truly lost (no exit.json, no shim): reported as such, not as a clean exit.
    exit_json.unlink()
    lost = ProcessDriver(tmp_path / "rt", "127.0.0.1")
    await lost.start()
    try:
        monkeypatch.setattr(lost, "_shim_alive", lambda container_id: False)
        st = await lost.container_status(cid)
        assert st is not None and (st.exit_code, st.reason) == (255, "Unknown")
    finally:
        await lost.close()
