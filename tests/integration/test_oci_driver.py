"""The oci driver with real runc/crun containers, namespaces, cgroups and CNI networking."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
import socket
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.oci_env import OciEnv, oci_env, requires_oci, wait_for

from bosun.agent.runtime.base import (
    ContainerState,
    DriverError,
    PortMapping,
    PullPolicy,
    Resources,
    SecurityConfig,
    StartError,
)
from bosun.agent.runtime.oci import SEALS, OciDriver

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
    # Asking again for the same pod returns the same sandbox.
    again = dataclasses.replace(env.sandbox("web"), pod_uid=sb.pod_uid)
    assert (await d.run_sandbox(again)).ip == sb.ip
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
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
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    script = "echo out; echo err >&2; exit 3"
    cid = await d.create_container(sb, env.container(sb.pod_uid, "fail", ["sh", "-c", script]), info)
    await d.start_container(cid)
    st = await wait_for(lambda: _exited(env, cid))
    assert st.exit_code == 3 and st.reason == "Error"
    logs = await _logs(env, cid)
    assert " stdout F out\n" in logs and " stderr F err\n" in logs
    bad = await d.create_container(sb, env.container(sb.pod_uid, "bad", ["no-such-binary"]), info)
    with pytest.raises(StartError, match="no-such-binary"):
        await d.start_container(bad)
    st = await d.container_status(bad)
    assert st is not None and st.reason == "StartError" and st.exit_code == 128


async def test_status_read_racing_the_shims_exit_keeps_the_exit_code(
        env: OciEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shim writes exit.json and then ends; a read that missed exit.json and then finds
    the shim gone looks again instead of reporting the exit as lost (255 Unknown)."""
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("racy"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, env.container(sb.pod_uid, "c", ["sh", "-c", "exit 7"]), info)
    await d.start_container(cid)
    await wait_for(lambda: _exited(env, cid))
    exit_json = d.root / "containers" / cid / "exit.json"
    held = exit_json.with_name("exit.json.held")
    exit_json.rename(held)

    def shim_ends_now(container_id: str) -> bool:
        if held.exists():
            held.rename(exit_json)
        return False

    # A driver that has not read it yet (d keeps the exit it saw): a restarted agent's.
    again = OciDriver(env.root / "oci", "127.0.0.1", pod_cidr=env.subnet, bridge=env.bridge,
                      network_name=env.network, cgroup_parent=env.cgroup_parent)
    monkeypatch.setattr(again, "_shim_alive", shim_ends_now)
    st = await again.container_status(cid)
    assert st is not None and (st.state, st.exit_code, st.reason) == (ContainerState.EXITED, 7, "Error")


async def _exited(env: OciEnv, cid: str):  # type: ignore[no-untyped-def]
    st = await env.driver.container_status(cid)
    return st if st is not None and st.state == ContainerState.EXITED else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run_to_end(env: OciEnv, sb, cfg, within: float = 15):  # type: ignore[no-untyped-def]
    info = await env.driver.ensure_image(cfg.image, PullPolicy.IF_NOT_PRESENT)
    cid = await env.driver.create_container(sb, cfg, info)
    await env.driver.start_container(cid)
    st = await wait_for(lambda: _exited(env, cid), within)
    return st, await _logs(env, cid)


async def test_memory_limit_is_oom_killed(env: OciEnv) -> None:
    sb = await env.driver.run_sandbox(env.sandbox("hog"))
    hog = "a = []\nwhile True: a.append(bytearray(1 << 20))"
    st, _ = await _run_to_end(env, sb, env.container(sb.pod_uid, "hog", ["python3", "-c", hog],
                                                     resources=Resources(memory_limit_bytes=48 << 20)))
    assert st.reason == "OOMKilled" and st.exit_code == 137


async def test_pids_limit_stops_forks(env: OciEnv) -> None:
    sb = await env.driver.run_sandbox(env.sandbox("forky"))
    script = ("import os, time\nn = 0\ntry:\n    while n < 40:\n        if os.fork() == 0:\n"
              "            time.sleep(3); os._exit(0)\n        n += 1\nexcept OSError as e:\n"
              "    print('fork failed after', n, e.errno)\n")
    _st, logs = await _run_to_end(env, sb, env.container(sb.pod_uid, "forky", ["python3", "-c", script],
                                                        resources=Resources(pids_limit=8)))
    assert "fork failed after" in logs, logs
    n = int(logs.split("fork failed after")[1].split()[0])
    assert n < 8


async def test_containers_of_a_pod_share_localhost_and_hostname(env: OciEnv) -> None:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("duo"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    server = await d.create_container(sb, env.container(sb.pod_uid, "server", [
        "python3", "-m", "http.server", "9000", "--bind", "127.0.0.1", "--directory", "/etc"]), info)
    await d.start_container(server)
    fetch = ("import time, urllib.request\nfor _ in range(100):\n    try:\n"
             "        print(urllib.request.urlopen('http://127.0.0.1:9000/hostname').read().decode()); break\n"
             "    except OSError: time.sleep(0.05)\n")
    st, logs = await _run_to_end(env, sb, env.container(sb.pod_uid, "client", ["python3", "-c", fetch]))
    assert st.exit_code == 0 and "stdout F duo" in logs, logs
    # Not reachable from the host: it listens on the pod's loopback only.
    assert _try_get(f"http://{sb.ip}:9000/hostname") is None


async def test_read_only_root_and_run_as_user(env: OciEnv) -> None:
    sb = await env.driver.run_sandbox(env.sandbox("locked"))
    script = "id -u; id -g; touch /x 2>/dev/null || echo root-read-only; touch /tmp/ok && echo tmp-writable"
    _st, logs = await _run_to_end(env, sb, env.container(
        sb.pod_uid, "locked", ["sh", "-c", script],
        security=SecurityConfig(run_as_user=1234, run_as_group=2345, read_only_root_filesystem=True)))
    lines = [line.split(" ", 3)[3] for line in logs.splitlines()]
    assert lines == ["1234", "2345", "root-read-only", "tmp-writable"], logs
    # Even root cannot write a read-only root; without the flag it can.
    for read_only, expected in ((True, "root-read-only"), (False, "root-writable")):
        _, logs = await _run_to_end(env, sb, env.container(
            sb.pod_uid, f"root{read_only}", ["sh", "-c", "touch /x && echo root-writable || echo root-read-only"],
            security=SecurityConfig(read_only_root_filesystem=read_only)))
        assert expected in logs, logs


async def test_cpu_quota_throttles(env: OciEnv) -> None:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("spin"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, env.container(sb.pod_uid, "spin", ["python3", "-c", "while True: pass"],
                                                     resources=Resources(cpu_quota_us=20_000)), info)
    await d.start_container(cid)
    await asyncio.sleep(0.3)
    first = await d.stats(cid)
    await asyncio.sleep(1.0)
    second = await d.stats(cid)
    assert first is not None and second is not None
    used = (second.cpu_usage_ns - first.cpu_usage_ns) / 1e9 / (second.timestamp - first.timestamp)
    assert 0.05 < used < 0.35, used


async def test_capabilities_drop_all(env: OciEnv) -> None:
    sb = await env.driver.run_sandbox(env.sandbox("nocaps"))
    _st, logs = await _run_to_end(env, sb, env.container(
        sb.pod_uid, "nocaps", ["sh", "-c", "grep CapEff /proc/self/status; chown 1 /tmp || echo denied"],
        security=SecurityConfig(capabilities_drop=["ALL"])))
    assert "CapEff:\t0000000000000000" in logs and "denied" in logs, logs


async def test_stop_runs_sigterm_then_sigkill(env: OciEnv) -> None:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("stopper"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    polite = await d.create_container(sb, env.container(sb.pod_uid, "polite", [
        "sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"]), info)
    stubborn = await d.create_container(sb, env.container(sb.pod_uid, "stubborn", ["sleep", "100"]), info)
    await d.start_container(polite)
    await d.start_container(stubborn)
    await wait_for(lambda: _has_log(env, polite, "ready"))
    t0 = time.monotonic()
    await d.stop_container(polite, 10)
    assert time.monotonic() - t0 < 3
    st = await d.container_status(polite)
    assert st is not None and st.exit_code == 0 and "bye" in await _logs(env, polite)
    t0 = time.monotonic()
    await d.stop_container(stubborn, 0.5)
    assert 0.4 < time.monotonic() - t0 < 5
    st = await d.container_status(stubborn)
    assert st is not None and st.exit_code == 137 and st.reason == "Error"
    await d.stop_container(stubborn, 0.5)  # idempotent


async def _has_log(env: OciEnv, cid: str, text: str) -> bool:
    return text in await _logs(env, cid)


async def test_driver_tells_an_exit_without_being_polled(env: OciEnv) -> None:
    """A running container's status is kept while its shim lives (no files read again), and
    the shim's exit is told by changed() with the pod's uid, whether the shim is this
    driver's or was started before it (a restarted agent); the exit code is the one written."""
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("told"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    first = await d.create_container(sb, env.container(sb.pod_uid, "a", ["sleep", "60"]), info)
    second = await d.create_container(sb, env.container(sb.pod_uid, "b", ["sleep", "60"]), info)
    for cid in (first, second):
        await d.start_container(cid)
    st = await d.container_status(first)
    assert st is not None and st.state == ContainerState.RUNNING
    assert await d.container_status(first) is st  # kept, not read again
    os.kill(int((d.root / "containers" / first / "container.pid").read_text()), 9)
    assert await asyncio.wait_for(d.changed(), 10) == {sb.pod_uid}
    st = await d.container_status(first)
    assert st is not None and (st.state, st.exit_code, st.reason) == (ContainerState.EXITED, 137, "Error")
    # A second driver on the same directory watches the shim it did not start.
    again = OciDriver(env.root / "oci", "127.0.0.1", pod_cidr=env.subnet, bridge=env.bridge,
                      network_name=env.network, cgroup_parent=env.cgroup_parent)
    await again.start()
    try:
        listed = {c.id: c.state for c in await again.list_containers(sb.pod_uid)}
        assert listed == {first: ContainerState.EXITED, second: ContainerState.RUNNING}
        os.kill(int((d.root / "containers" / second / "container.pid").read_text()), 9)
        assert await asyncio.wait_for(again.changed(), 10) == {sb.pod_uid}
        st = await again.container_status(second)
        assert st is not None and (st.state, st.exit_code) == (ContainerState.EXITED, 137)
    finally:
        await again.close()


async def test_exec_stats_and_readoption(env: OciEnv) -> None:
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("box"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, env.container(sb.pod_uid, "box", ["sleep", "60"]), info)
    await d.start_container(cid)
    proc = await d.exec(cid, ["sh", "-c", "cat /etc/hostname; echo oops >&2; exit 5"])
    out = await proc.stdout.read()
    assert proc.stderr is not None
    err = await proc.stderr.read()
    assert (await proc.wait(), out, err) == (5, b"box\n", b"oops\n")
    tty = await d.exec(cid, ["sh", "-c", "stty size; tty"], tty=True)
    tty.resize(100, 40)
    text = (await asyncio.wait_for(tty.stdout.read(), 5)).decode()
    assert await tty.wait() == 0 and "/dev/pts/" in text
    stats = await d.stats(cid)
    assert stats is not None and stats.memory_working_set_bytes > 0
    # A new driver on the same directory (an agent restart) finds the pod and its container.
    again = OciDriver(env.root / "oci", "127.0.0.1", pod_cidr=env.subnet, bridge=env.bridge,
                      network_name=env.network, cgroup_parent=env.cgroup_parent)
    await again.start()
    assert [s.ip for s in await again.list_sandboxes()] == [sb.ip]
    st = await again.container_status(cid)
    assert st is not None and st.state == ContainerState.RUNNING and st.name == "box"
    await again.stop_container(cid, 0)
    st = await again.container_status(cid)
    assert st is not None and st.state == ContainerState.EXITED


async def test_exec_probe_runs_in_the_container_and_honours_its_timeout(env: OciEnv) -> None:
    """What exec probes use (exec_capture): the container's hostname, user and PID namespace,
    the exit code and merged output; after timeoutSeconds nothing it started is left."""
    d = env.driver
    sb = await d.run_sandbox(env.sandbox("probed"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, env.container(sb.pod_uid, "probed", ["sleep", "60"]), info)
    await d.start_container(cid)
    code, out = await d.exec_capture(cid, ["sh", "-c", "cat /etc/hostname; id -u; echo $$; echo oops >&2; exit 3"],
                                     5.0)
    assert code == 3
    assert out.decode().split() == ["probed", "0", out.decode().split()[2], "oops"]
    assert int(out.decode().split()[2]) < 100  # a pid of the container's own PID namespace
    assert await d.exec_capture(cid, ["true"], 5.0) == (0, b"")
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        await d.exec_capture(cid, ["sh", "-c", "sleep 30 & sleep 31"], 0.5)
    assert time.monotonic() - began < 5
    code, out = await d.exec_capture(cid, ["ps", "-eo", "args"], 5.0)
    assert code == 0 and b"sleep 3" not in out, out
    await d.stop_container(cid, 0)
    with pytest.raises(DriverError):
        await d.exec_capture(cid, ["true"], 5.0)


async def test_crun_runs_from_a_sealed_copy(env: OciEnv) -> None:
    """crun, executed from a sealed in-memory copy, skips its own re-execution (it checks for
    exactly these seals) and so is still protected against being overwritten."""
    d = env.driver
    if not d.is_crun:
        # runc (the fallback) protects itself its own way: it is run as installed.
        assert d._rt()[0] == d.runtime and d._sealed_fd < 0
        return
    link = Path(d._rt()[0])
    target = os.readlink(link)
    assert link.name == "crun" and target == f"/proc/{os.getpid()}/fd/{d._sealed_fd}"
    fd = os.open(target, os.O_RDWR)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == SEALS
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"x", 0)
    finally:
        os.close(fd)
    sb = await d.run_sandbox(env.sandbox("sealed"))
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    cid = await d.create_container(sb, env.container(sb.pod_uid, "sealed", ["sleep", "60"]), info)
    await d.start_container(cid)
    assert await d.exec_capture(cid, ["true"], 5.0) == (0, b"")
    await d.stop_container(cid, 0)
    await d.remove_container(cid)
    await d.stop_sandbox(sb.id)
    await d.remove_sandbox(sb.id)
    await d.close()
    assert not await asyncio.to_thread(os.path.lexists, link)
    assert d._rt()[0] == d.runtime


async def test_host_network_and_host_port(env: OciEnv) -> None:
    d = env.driver
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    port = _free_port()
    hn = await d.run_sandbox(env.sandbox("hostnet", host_network=True))
    assert hn.ip == "127.0.0.1" and hn.netns_path is None
    cid = await d.create_container(hn, env.container(hn.pod_uid, "srv", [
        "python3", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", "/etc"]), info)
    await d.start_container(cid)
    # The node's hostname and /etc/hosts, as kubelet gives a hostNetwork pod.
    assert (await wait_for(lambda: _try_get(f"http://127.0.0.1:{port}/hostname"))).strip() == socket.gethostname()
    assert _try_get(f"http://127.0.0.1:{port}/hosts") == _read("/etc/hosts")
    await d.stop_container(cid, 0)

    host_port = _free_port()
    sb = await d.run_sandbox(env.sandbox("mapped", ports=[PortMapping(container_port=8080, host_port=host_port)]))
    cid = await d.create_container(sb, env.container(sb.pod_uid, "srv", [
        "python3", "-m", "http.server", "8080", "--directory", "/etc"]), info)
    await d.start_container(cid)
    gateway = sb.ip.rsplit(".", 1)[0] + ".1"
    body = await wait_for(lambda: _try_get(f"http://{gateway}:{host_port}/hostname"))
    assert body.strip() == "mapped"


async def test_host_port_on_loopback(env: OciEnv) -> None:
    d = env.driver
    info = await d.ensure_image("host", PullPolicy.IF_NOT_PRESENT)
    host_port = _free_port()
    sb = await d.run_sandbox(env.sandbox("lo", ports=[PortMapping(container_port=8080, host_port=host_port)]))
    cid = await d.create_container(sb, env.container(sb.pod_uid, "srv", [
        "python3", "-m", "http.server", "8080", "--directory", "/etc"]), info)
    await d.start_container(cid)
    body = await wait_for(lambda: _try_get(f"http://127.0.0.1:{host_port}/hostname"))
    assert body.strip() == "lo"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()
