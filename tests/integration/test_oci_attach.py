"""Interactive containers with crun and with runc: the runtime makes the terminal inside the
container and hands its master to the shim over the console socket; attaching through the
driver gives its input, output and size. Without a tty, stdin is a pipe the shim holds."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest
from tests.integration.oci_env import OciEnv, oci_env, requires_oci, wait_for

from bosun.agent.runtime.base import ContainerState, PullPolicy
from bosun.agent.runtime.shim_attach import ShimAttachment

pytestmark = [requires_oci, pytest.mark.timeout(60)]
RUNTIMES = [r for r in ("crun", "runc") if shutil.which(r)]


@pytest.fixture(params=RUNTIMES)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[OciEnv]:
    async with oci_env(runtime=request.param) as e:
        yield e


async def _start(env: OciEnv, command: list[str], *, tty: bool) -> str:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("it"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, env.container(sb.pod_uid, "it", command, stdin=True, tty=tty), info)
    await d.start_container(cid)
    return cid


async def _read_until(att: ShimAttachment, text: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(15):
        while text not in seen:
            item = await att.read()
            assert item is not None, f"output ended before {text!r}: {seen!r}"
            seen += item[1]
    return seen


async def test_a_terminal_made_by_the_runtime(env: OciEnv) -> None:
    cid = await _start(env, ["sh"], tty=True)
    att = await env.driver.attach(cid)
    assert att is not None
    try:
        await att.resize(101, 31)
        await att.write(b"stty size; tty; echo x-$((2*21)); exit 4\n")
        seen = await _read_until(att, b"x-42")
        assert b"31 101" in seen and b"/dev/pts/0" in seen  # the container's own devpts
    finally:
        att.close()
    st = await wait_for(lambda: _exited(env, cid))
    assert st.exit_code == 4


async def test_stdin_without_a_terminal(env: OciEnv) -> None:
    cid = await _start(env, ["sh", "-c", "read l; echo got-$l"], tty=False)
    att = await env.driver.attach(cid)
    assert att is not None
    try:
        await att.write(b"line\n")
        await _read_until(att, b"got-line")
        assert await att.read() is None  # the container ended, and its output with it
    finally:
        att.close()
    st = await wait_for(lambda: _exited(env, cid))
    assert st.exit_code == 0


async def _exited(env: OciEnv, cid: str) -> object:
    st = await env.driver.container_status(cid)
    return st if st is not None and st.state == ContainerState.EXITED else None
