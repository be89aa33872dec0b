"""The oci driver with real runc/crun containers, namespaces, cgroups and CNI networking."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator

import pytest

from bosun.agent.runtime.base import ContainerState
from tests.integration.oci_env import OciEnv, oci_env, requires_oci, wait_for

pytestmark = [requires_oci, pytest.mark.timeout(60)]


@pytest.fixture
async def env() -> AsyncIterator[OciEnv]:
    async with oci_env() as e:
        yield e


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read().decode()


async def _logs(env: OciEnv, cid: str) -> str:
    st = await env.driver.container_status(cid)
    assert st is not None and st.log_path is not None
    return st.log_path.read_text() if st.log_path.exists() else ""


async def test_host_image_http_server_answers_on_pod_ip(env: OciEnv) -> None:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("web"))
    assert sb.ready and sb.ip.startswith(env.subnet.rsplit(".", 1)[0])
    assert (await d.run_sandbox(env.sandbox("web").__class__(**{**env.sandbox("web").__dict__,
                                                             "pod_uid": sb.pod_uid}))).ip == sb.ip
    info = await d.ensure_image("host", "IfNotPresent")  # type: ignore[arg-type]
    cfg = env.container(sb.pod_uid, "web", ["python3", "-m", "http.server", "8080", "--directory", "/etc"])
    cid = await d.create_container(sb, cfg, info)
    await d.start_container(cid)
    body = await wait_for(lambda: _try_get(f"http://{sb.ip}:8080/hostname"))
    assert body.strip() == "web"
    st = await d.container_status(cid)
    assert st is not None and st.state == ContainerState.RUNNING
    assert [c.id for c in await d.list_containers(sb.pod_uid)] == [cid]
    await d.stop_container(cid, 1)
    st = await d.container_status(cid)
    assert st is not None and st.state == ContainerState.EXITED
    assert "GET /hostname" in await _logs(env, cid)


def _try_get(url: str) -> str | None:
    try:
        return _get(url)
    except OSError:
        return None


async def test_exit_code_and_start_error(env: OciEnv) -> None:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("jobs"))
    info = await d.ensure_image("host", "IfNotPresent")  # type: ignore[arg-type]
    cid = await d.create_container(sb, env.container(sb.pod_uid, "fail", ["sh", "-c", "echo out; echo err >&2; exit 3"]),
                                   info)
    await d.start_container(cid)
    st = await wait_for(lambda: _exited(env, cid))
    assert st.exit_code == 3 and st.reason == "Error"
    logs = await _logs(env, cid)
    assert " stdout F out\n" in logs and " stderr F err\n" in logs
    bad = await d.create_container(sb, env.container(sb.pod_uid, "bad", ["no-such-binary"]), info)
    from bosun.agent.runtime.base import StartError
    with pytest.raises(StartError, match="no-such-binary"):
        await d.start_container(bad)
    st = await d.container_status(bad)
    assert st is not None and st.reason == "StartError" and st.exit_code == 128


async def _exited(env: OciEnv, cid: str):  # type: ignore[no-untyped-def]
    st = await env.driver.container_status(cid)
    return st if st is not None and st.state == ContainerState.EXITED else None
