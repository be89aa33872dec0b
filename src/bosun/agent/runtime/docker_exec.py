"""``kubectl exec`` (and exec probes and hooks) and ``kubectl attach`` through the Docker
Engine's exec and attach APIs.

The engine hands over the HTTP connection once the command starts: raw bytes with a tty,
else frames of an 8-byte header (stream 1 or 2, then the length) and the data, which
:class:`DockerExec` splits into the stdout and stderr readers of :class:`ExecProcess`.
Half-closing the connection closes the command's stdin. The exit code comes from the exec's
inspect record once the engine says it no longer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from concurrent.futures import Executor
from typing import Any

import docker
import docker.errors

from bosun.agent.runtime.base import DriverError


class DockerExec:
    """One exec, as the :class:`~bosun.agent.runtime.base.ExecProcess` the agent streams."""

    def __init__(self, client: docker.APIClient, pool: Executor, exec_id: str, raw: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, tty: bool, stdin: bool) -> None:
        self._client, self._pool, self.id = client, pool, exec_id
        self._writer = writer
        self.stdin: asyncio.StreamWriter | None = writer if stdin else None
        self.stderr: asyncio.StreamReader | None = None
        self._pump: asyncio.Task[None] | None = None
        if tty:
            self.stdout = raw
        else:
            self.stdout, self.stderr = asyncio.StreamReader(), asyncio.StreamReader()
            self._pump = asyncio.create_task(self._demux(raw), name=f"docker-exec-{exec_id[:12]}")

    async def _demux(self, raw: asyncio.StreamReader) -> None:
        assert self.stderr is not None
        try:
            while True:
                header = await raw.readexactly(8)
                data = await raw.readexactly(int.from_bytes(header[4:8], "big"))
                (self.stderr if header[0] == 2 else self.stdout).feed_data(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.stdout.feed_eof()
            self.stderr.feed_eof()

    async def _inspect(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        data: dict[str, Any] = await loop.run_in_executor(self._pool, self._client.exec_inspect, self.id)
        return data

    async def wait(self) -> int:
        step = 0.01
        while True:
            data = await self._inspect()
            if not data.get("Running"):
                if self._pump is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._pump
                self._writer.close()
                code = data.get("ExitCode")
                return 255 if code is None else int(code)
            await asyncio.sleep(step)
            step = min(step * 2, 0.25)

    def resize(self, cols: int, rows: int) -> None:
        def call() -> None:
            with contextlib.suppress(docker.errors.APIError):
                self._client.exec_resize(self.id, height=rows, width=cols)

        self._pool.submit(call)

    def kill(self) -> None:
        """The engine has no exec kill: the command's host pid is signalled directly."""
        def call() -> None:
            with contextlib.suppress(docker.errors.APIError, OSError):
                pid = int(self._client.exec_inspect(self.id).get("Pid") or 0)
                if pid > 0:
                    os.kill(pid, signal.SIGKILL)

        self._pool.submit(call)
        self._writer.close()


class DockerAttachment:
    """:class:`~bosun.agent.runtime.base.Attachment` over the engine's attach connection."""

    def __init__(self, client: docker.APIClient, pool: Executor, container_id: str, raw: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, tty: bool) -> None:
        self._client, self._pool, self._id = client, pool, container_id
        self._raw, self._writer, self._tty = raw, writer, tty

    async def read(self) -> tuple[int, bytes] | None:
        try:
            if self._tty:
                data = await self._raw.read(65536)
                return (1, data) if data else None
            header = await self._raw.readexactly(8)
            return (2 if header[0] == 2 else 1), await self._raw.readexactly(int.from_bytes(header[4:8], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def write(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.write(data)
            await self._writer.drain()

    async def close_stdin(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, OSError):
            self._writer.write_eof()

    async def resize(self, cols: int, rows: int) -> None:
        def call() -> None:
            with contextlib.suppress(docker.errors.APIError):
                self._client.resize(self._id, height=rows, width=cols)

        await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        self._writer.close()


async def _streams(sock: socket.socket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock.setblocking(False)
    if sock.family == socket.AF_UNIX:
        return await asyncio.open_unix_connection(sock=sock)
    return await asyncio.open_connection(sock=sock)


def _own_socket(conn: Any) -> socket.socket:
    """The upgraded connection under docker-py's wrapper, as a socket of our own."""
    sock: socket.socket = conn._sock
    own = sock.dup()
    conn.close()
    sock.close()
    return own


async def attach(client: docker.APIClient, pool: Executor, container_id: str) -> DockerAttachment | None:
    """Attach to a running interactive container (``stdin`` or ``tty``); None otherwise."""
    def begin() -> tuple[socket.socket, bool] | None:
        try:
            data = client.inspect_container(container_id)
            cfg = data.get("Config") or {}
            if not data["State"].get("Running") or not (cfg.get("OpenStdin") or cfg.get("Tty")):
                return None
            params = {"stdin": 1 if cfg.get("OpenStdin") else 0, "stdout": 1, "stderr": 1, "stream": 1}
            return _own_socket(client.attach_socket(container_id, params=params)), bool(cfg.get("Tty"))
        except docker.errors.APIError:
            return None

    got = await asyncio.get_running_loop().run_in_executor(pool, begin)
    if got is None:
        return None
    raw, writer = await _streams(got[0])
    return DockerAttachment(client, pool, container_id, raw, writer, tty=got[1])


async def start_exec(client: docker.APIClient, pool: Executor, container_id: str, command: list[str], *,
                     tty: bool, stdin: bool) -> DockerExec:
    def begin() -> tuple[str, socket.socket]:
        try:
            exec_id = client.exec_create(container_id, command, stdin=stdin, tty=tty)["Id"]
            conn = client.exec_start(exec_id, tty=tty, socket=True)
        except docker.errors.NotFound as e:
            raise DriverError("NotRunning", f"container {container_id} is not running") from e
        except docker.errors.APIError as e:
            raise DriverError("ExecError", f"exec failed: {e.explanation or e}") from e
        return exec_id, _own_socket(conn)

    loop = asyncio.get_running_loop()
    exec_id, sock = await loop.run_in_executor(pool, begin)
    raw, writer = await _streams(sock)
    return DockerExec(client, pool, exec_id, raw, writer, tty=tty, stdin=stdin)
