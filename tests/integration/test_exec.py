"""pods/exec end to end in one process: a real API server, a real agent with the process
driver, and a WebSocket client speaking the remote command protocol the way kubectl does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import client_for

from bosun.agent.agent import Agent
from bosun.agent.config import AgentConfig
from bosun.agent.runtime.process import ProcessDriver
from bosun.api.registry import by_plural
from bosun.client.rest import Client

pytestmark = pytest.mark.timeout(60)

PODS = by_plural("", "v1", "pods")
NAMESPACES = by_plural("", "v1", "namespaces")
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from served(tmp_path_factory.mktemp("exec-server"))


class Cluster:
    """The server, one agent, and a running pod ``box`` (containers ``main`` and ``side``)."""

    def __init__(self, server: RunningServer, agent: Agent, client: Client, namespace: str) -> None:
        self.server = server
        self.agent = agent
        self.client = client
        self.namespace = namespace
        ctx = ssl.create_default_context(cafile=server.ca_path)
        self.ssl = ctx
        self.headers = {"Authorization": f"Bearer {server.token}"}

    def exec_url(self, pod: str = "box") -> str:
        return f"{self.server.url}/api/v1/namespaces/{self.namespace}/pods/{pod}/exec"


def _alive(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


@pytest.fixture
async def cluster(server: RunningServer, tmp_path: Path, namespace: str) -> AsyncIterator[Cluster]:
    assert PODS is not None and NAMESPACES is not None
    client = client_for(server)
    config = AgentConfig(node_name=f"exec-{namespace}", data_dir=tmp_path / "agent", listen_host="127.0.0.1",
                         listen_port=0, relist_interval=0.1, status_flush_interval=0.05, node_network=False)
    driver = ProcessDriver(config.runtime_dir / "process", "127.0.0.1")
    agent = Agent(client, config, driver, node_ip="127.0.0.1")
    try:
        await agent.start()
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        await client.create(PODS, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box", "namespace": namespace},
            "spec": {"nodeName": config.node_name, "terminationGracePeriodSeconds": 1, "containers": [
                {"name": "main", "image": "host", "command": ["sleep", "300"]},
                {"name": "side", "image": "host", "command": ["sleep", "300"]}]}}, namespace)
        deadline = time.monotonic() + 20
        while not _both_running(await client.get(PODS, "box", namespace)):
            assert time.monotonic() < deadline, "pod did not start"
            await asyncio.sleep(0.05)
        yield Cluster(server, agent, client, namespace)
    finally:
        await agent.stop()
        with contextlib.suppress(FileNotFoundError):
            for c in await driver.list_containers():
                await driver.remove_container(c.id)
        await client.close()


def _both_running(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(1 for st in statuses if "running" in (st.get("state") or {})) == 2


class Session:
    """A finished exec as the client saw it."""

    def __init__(self) -> None:
        self.stdout = b""
        self.stderr = b""
        self.status: dict[str, Any] | None = None
        self.frames: list[int] = []


async def _collect(ws: aiohttp.ClientWebSocketResponse, out: Session) -> Session:
    async for msg in ws:
        assert msg.type == aiohttp.WSMsgType.BINARY
        channel, data = msg.data[0], msg.data[1:]
        out.frames.append(channel)
        if channel == STDOUT:
            out.stdout += data
        elif channel == STDERR:
            out.stderr += data
        elif channel == ERROR:
            out.status = json.loads(data)
    return out


def _params(command: list[str], container: str = "main", **flags: bool) -> list[tuple[str, str]]:
    wanted = {"stdout": True, "stderr": True, "stdin": False, "tty": False, **flags}
    return [("command", c) for c in command] + [("container", container)] + [
        (k, "true" if v else "false") for k, v in wanted.items()]


async def _run(c: Cluster, command: list[str], protocol: str = V5, stdin: bytes | None = None,
               container: str = "main") -> tuple[Session, str | None]:
    async with aiohttp.ClientSession() as s, s.ws_connect(
            c.exec_url(), params=_params(command, container, stdin=stdin is not None), headers=c.headers,
            ssl=c.ssl, protocols=[protocol]) as ws:
        if stdin is not None:
            await ws.send_bytes(bytes([STDIN]) + stdin)
            await ws.send_bytes(bytes([CLOSE, STDIN]))
        result = await asyncio.wait_for(_collect(ws, Session()), 15)
        return result, ws.protocol


async def test_output_channels_exit_codes_and_stdin(cluster: Cluster) -> None:
    ok, proto = await _run(cluster, ["sh", "-c", "echo out; echo err >&2"])
    assert proto == V5
    assert (ok.stdout, ok.stderr) == (b"out\n", b"err\n")
    assert ok.status is not None and ok.status["status"] == "Success"
    assert ok.frames[0] == STDOUT and ok.frames[-1] == ERROR  # status comes last

    failed, _ = await _run(cluster, ["sh", "-c", "exit 3"])
    assert failed.status is not None
    assert failed.status["status"] == "Failure" and failed.status["reason"] == "NonZeroExitCode"
    assert failed.status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]

    # stdin, ended by v5's close signal: cat sees EOF and exits.
    piped, _ = await _run(cluster, ["sh", "-c", "cat; echo done"], stdin=b"line one\nline two\n")
    assert piped.stdout == b"line one\nline two\ndone\n"
    assert piped.status is not None and piped.status["status"] == "Success"

    # An older client that offers only v4 gets v4.
    old, proto = await _run(cluster, ["echo", "v4"], protocol=V4)
    assert proto == V4 and old.stdout == b"v4\n"

    # The other container of the pod, chosen by name; env and cwd come from the container.
    side, _ = await _run(cluster, ["sh", "-c", "echo $HOSTNAME"], container="side")
    assert side.stdout == b"box\n"


async def test_tty_gets_a_terminal_and_resizes(cluster: Cluster) -> None:
    params = _params(["sh", "-c", "tty; stty size; read line; stty size; echo got $line"],
                     stdin=True, tty=True, stderr=False)
    async with aiohttp.ClientSession() as s, s.ws_connect(
            cluster.exec_url(), params=params, headers=cluster.headers, ssl=cluster.ssl, protocols=[V5]) as ws:
        # kubectl sends the terminal size first; the command must see it from the start.
        await ws.send_bytes(bytes([RESIZE]) + json.dumps({"Width": 100, "Height": 40}).encode())
        out = b""
        while b"40 100" not in out:
            try:
                msg = await asyncio.wait_for(ws.receive(), 10)
            except TimeoutError:
                raise AssertionError(f"no terminal size in {out!r}") from None
            assert msg.type == aiohttp.WSMsgType.BINARY and msg.data[0] == STDOUT, msg
            out += msg.data[1:]
        assert out.startswith(b"/dev/pts/")
        await ws.send_bytes(bytes([RESIZE]) + json.dumps({"Width": 132, "Height": 50}).encode())
        await asyncio.sleep(0.2)
        await ws.send_bytes(bytes([STDIN]) + b"hello\r")
        rest = await asyncio.wait_for(_collect(ws, Session()), 10)
    text = (out + rest.stdout).decode()
    assert "50 132" in text and "got hello" in text
    assert rest.status is not None and rest.status["status"] == "Success"
    assert STDERR not in rest.frames  # a tty merges stderr into stdout


async def test_refusals_are_clear(cluster: Cluster) -> None:
    async with aiohttp.ClientSession() as s:
        async def refused(params: list[tuple[str, str]], pod: str = "box") -> tuple[int, dict[str, Any]]:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await s.ws_connect(cluster.exec_url(pod), params=params, headers=cluster.headers,
                                   ssl=cluster.ssl, protocols=[V5])
            # The same request without the upgrade reads the Status the handshake carried.
            async with s.get(cluster.exec_url(pod), params=params, headers=cluster.headers, ssl=cluster.ssl) as r:
                assert r.status == info.value.status
                return r.status, await r.json()

        code, status = await refused(_params(["true"], container="nope"))
        assert code == 400 and status["message"] == "container nope is not valid for pod box"
        code, status = await refused([("stdout", "true")])
        assert code == 400 and "at least one command" in status["message"]
        code, status = await refused(_params(["true"]), pod="missing")
        assert code == 404 and status["reason"] == "NotFound"
        # A client that cannot upgrade (kubectl's SPDY fallback) is told why.
        async with s.post(cluster.exec_url(), params=_params(["true"]), headers=cluster.headers,
                          ssl=cluster.ssl) as r:
            assert r.status == 400 and "WebSocket" in (await r.json())["message"]

        # The agent's endpoint wants the cluster's credentials.
        agent_url = f"https://127.0.0.1:{cluster.agent.port}/exec/{cluster.namespace}/box/main"
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with s.get(agent_url, params=_params(["true"]), headers=headers, ssl=_insecure()) as r:
                assert r.status == 401
        async with s.get(agent_url, params=_params(["true"]), headers=cluster.headers, ssl=_insecure()) as r:
            assert r.status == 426  # authenticated and valid: only the upgrade is missing

        # A command that cannot start is reported on the error channel.
        bad, _ = await _run(cluster, ["/nonexistent/cmd"])
        assert bad.status is not None and bad.status["status"] == "Failure"
        assert "/nonexistent/cmd" in bad.status["message"]


async def test_client_going_away_ends_the_command(cluster: Cluster) -> None:
    marker = f"exec-gone-{os.getpid()}-{time.monotonic_ns()}"
    async with aiohttp.ClientSession() as s, s.ws_connect(
            cluster.exec_url(), params=_params(["sh", "-c", f"echo started; sleep 300; : {marker}"]),
            headers=cluster.headers, ssl=cluster.ssl, protocols=[V5]) as ws:
        while True:
            msg = await asyncio.wait_for(ws.receive(), 10)
            if msg.data[0] == STDOUT and b"started" in msg.data:
                break
    deadline = time.monotonic() + 10
    while _alive(marker):
        assert time.monotonic() < deadline, "the exec'd command outlived its client"
        await asyncio.sleep(0.1)


async def test_agent_attach_streams_output_until_the_container_ends(cluster: Cluster) -> None:
    assert PODS is not None
    await cluster.client.create(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker", "namespace": cluster.namespace},
        "spec": {"nodeName": cluster.agent.config.node_name, "restartPolicy": "Never", "containers": [
            {"name": "main", "image": "host", "command": [
                "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo tick$i; echo tock$i >&2; sleep 0.25; done"]}]}},
        cluster.namespace)
    deadline = time.monotonic() + 15
    while not any("running" in (st.get("state") or {}) for st in
                  ((await cluster.client.get(PODS, "talker", cluster.namespace)).get("status") or {})
                  .get("containerStatuses") or []):
        assert time.monotonic() < deadline, "pod did not start"
        await asyncio.sleep(0.05)
    url = f"https://127.0.0.1:{cluster.agent.port}/attach/{cluster.namespace}/talker/main"
    async with aiohttp.ClientSession() as s, s.ws_connect(
            url, params={"stdout": "true", "stderr": "true"}, headers=cluster.headers, ssl=_insecure(),
            protocols=[V5]) as ws:
        seen = await asyncio.wait_for(_collect(ws, Session()), 15)
    assert b"tick8\n" in seen.stdout and b"tock8\n" in seen.stderr
    assert b"tock" not in seen.stdout and b"tick" not in seen.stderr
    assert b"tick1\n" not in seen.stdout  # only what is written after attaching
    assert seen.status is not None and seen.status["status"] == "Success"
