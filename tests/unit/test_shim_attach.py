"""Interactive containers (stdin, tty) under the shim, driven through the driver's attach
ability with real host processes (process driver): input, output to every attached client and
to the log, stdinOnce, terminal size, and attaching again from a new driver object (an agent
restart), while plain containers offer nothing to attach to."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bosun.agent.runtime.base import ContainerAttacher, ContainerConfig, ContainerState, PullPolicy, SandboxConfig
from bosun.agent.runtime.process import ProcessDriver
from bosun.agent.runtime.shim_attach import ShimAttachment

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[ProcessDriver]:
    d = ProcessDriver(tmp_path / "rt", "127.0.0.1")
    await d.start()
    try:
        yield d
    finally:
        for c in await d.list_containers():
            await d.stop_container(c.id, 1)
            await d.remove_container(c.id)
        await d.close()


async def _run(d: ProcessDriver, tmp: Path, cmd: list[str], **interactive: bool) -> str:
    sb = await d.run_sandbox(SandboxConfig(pod_uid="uid1", pod_name="p", namespace="ns", hostname="p",
                                           pod_dir=tmp / "pod"))
    img = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, ContainerConfig(name="c", pod_uid="uid1", attempt=0, image="host",
                                                       command=cmd, log_path=tmp / "c.log", **interactive), img)
    await d.start_container(cid)
    return cid


async def _attach(d: ProcessDriver, cid: str) -> ShimAttachment:
    att = await d.attach(cid)
    assert att is not None
    return att


async def _read_until(att: ShimAttachment, text: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(15):
        while text not in seen:
            item = await att.read()
            assert item is not None, f"output ended before {text!r}: {seen!r}"
            seen += item[1]
    return seen


async def test_stdin_reaches_the_container_and_output_every_client(driver: ProcessDriver, tmp_path: Path) -> None:
    assert isinstance(driver, ContainerAttacher)
    cid = await _run(driver, tmp_path, ["sh", "-c", "while read l; do echo got-$l; done; echo eof"],
                     stdin=True, stdin_once=True)
    first, second = await _attach(driver, cid), await _attach(driver, cid)
    await first.write(b"one\n")
    assert b"got-one" in await _read_until(first, b"got-one")
    assert b"got-one" in await _read_until(second, b"got-one")
    # stdinOnce: the first client to leave closes the container's stdin.
    first.close()
    assert b"eof" in await _read_until(second, b"eof")
    assert await second.read() is None  # the container ended, and so did its output
    second.close()
    log = (tmp_path / "c.log").read_text()
    assert " stdout F got-one" in log and " stdout F eof" in log


async def test_much_input_through_a_container_that_echoes_it(driver: ProcessDriver, tmp_path: Path) -> None:
    # The shim never blocks on the container's stdin: a container that writes a lot before it
    # reads (so input piles up meanwhile) cannot deadlock with it.
    cid = await _run(driver, tmp_path, ["sh", "-c", "read go; head -c 1000000 /dev/zero; cat"], stdin=True)
    att = await _attach(driver, cid)
    payload = os.urandom(3 * 1024 * 1024)

    async def feed() -> None:
        await att.write(b"go\n")  # output starts once we are attached
        for i in range(0, len(payload), 65536):
            await att.write(payload[i:i + 65536])
        await att.close_stdin()

    writer = asyncio.create_task(feed())
    got = bytearray()
    async with asyncio.timeout(30):
        while (item := await att.read()) is not None:
            got += item[1]
    await writer
    att.close()
    assert bytes(got) == bytes(1000000) + payload


async def test_a_terminal_follows_resizes_and_survives_a_new_driver(driver: ProcessDriver, tmp_path: Path) -> None:
    cid = await _run(driver, tmp_path, ["sh"], stdin=True, tty=True)
    att = await _attach(driver, cid)
    await att.resize(91, 27)
    await att.write(b"stty size; tty\n")
    assert b"27 91" in await _read_until(att, b"/dev/pts/")
    att.close()
    again = ProcessDriver(tmp_path / "rt", "127.0.0.1")  # what a restarted agent makes
    await again.start()
    try:
        att = await _attach(again, cid)
        await att.write(b"echo back-$((40+2)); exit 7\n")
        await _read_until(att, b"back-42")
        att.close()
        for _ in range(300):
            st = await again.container_status(cid)
            if st is not None and st.state == ContainerState.EXITED:
                break
            await asyncio.sleep(0.05)
        assert st is not None and st.exit_code == 7
    finally:
        await again.close()


async def test_a_plain_container_has_nothing_to_attach_to(driver: ProcessDriver, tmp_path: Path) -> None:
    cid = await _run(driver, tmp_path, ["sleep", "30"])
    assert await driver.attach(cid) is None
