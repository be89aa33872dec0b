"""crun and runc both run containers here, each detached under its shim: exit codes, logs,
stop, cgroups, and no runtime process left per running container. On this machine's hybrid
cgroups crun runs through a private mount view (see oci.HYBRID_UNIFIED)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.oci_env import OciEnv, oci_env, requires_oci, wait_for

from bosun.agent.runtime.base import ContainerState, PullPolicy
from bosun.agent.runtime.oci import pick_runtime

pytestmark = [requires_oci, pytest.mark.timeout(60)]
RUNTIMES = [r for r in ("crun", "runc") if shutil.which(r)]


@pytest.fixture(params=RUNTIMES)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[OciEnv]:
    async with oci_env(runtime=request.param) as e:
        yield e


def _children(pid: int) -> list[str]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":  # live ones (not a runtime's zombie)
                    out.append(Path(f"/proc/{entry}/comm").read_text().strip())
            except (OSError, ValueError, IndexError):
                continue
    return out


def _read(path: str) -> str:
    return Path(path).read_text()


def test_auto_prefers_crun() -> None:
    if "crun" in RUNTIMES:
        assert os.path.basename(pick_runtime("auto")) == "crun"


async def test_run_exit_log_and_stop(env: OciEnv) -> None:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("rt"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    done = await d.create_container(sb, env.container(sb.pod_uid, "once", ["sh", "-c", "echo out; exit 3"]), info)
    await d.start_container(done)
    st = await wait_for(lambda: _exited(d, done))
    assert st.exit_code == 3 and st.reason == "Error"
    assert " stdout F out" in st.log_path.read_text()

    cid = await d.create_container(sb, env.container(sb.pod_uid, "long", ["sleep", "60"]), info)
    await d.start_container(cid)
    st = await d.container_status(cid)
    assert st is not None and st.state == ContainerState.RUNNING
    # The container is the shim's own child: no runc/crun process stays in between (the
    # runtime's own process may still be ending its exec into the container's for a moment).
    shim_pid = int((d.root / "containers" / cid / "shim.pid").read_text().split()[0])
    await wait_for(lambda: _children(shim_pid) == ["sleep"], within=5)
    cg = (d.root / "containers" / cid / "meta.json").read_text()
    assert env.cgroup_parent in cg
    pid = int((d.root / "containers" / cid / "container.pid").read_text())
    assert f"/{env.cgroup_parent}/" in _read(f"/proc/{pid}/cgroup")
    await d.stop_container(cid, 0.2)  # sleep as PID 1 ignores TERM: KILL
    st = await d.container_status(cid)
    assert st is not None and st.state == ContainerState.EXITED and st.exit_code == 137
    for c in (done, cid):
        await d.remove_container(c)
    await d.stop_sandbox(sb.id)
    await d.remove_sandbox(sb.id)


async def _exited(d: object, cid: str) -> object:
    st = await d.container_status(cid)  # type: ignore[attr-defined]
    return st if st is not None and st.state == ContainerState.EXITED else None
