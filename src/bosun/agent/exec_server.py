"""The agent's exec endpoint: runs a command in a container and speaks Kubernetes' remote
command channel protocol over a WebSocket, so the API server only has to relay frames.

``GET /exec/{namespace}/{pod}/{container}?command=..&command=..&stdin=&stdout=&stderr=&tty=``
with subprotocol ``v5.channel.k8s.io`` (or ``v4.channel.k8s.io``). Every binary message
starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (one JSON ``metav1.Status``
sent when the command ends: Success, or Failure with reason ``NonZeroExitCode`` and cause
``ExitCode`` so ``kubectl exec`` exits with the same code), 4 resize (JSON
``{"Width": w, "Height": h}``). v5 adds 255 "close": ``[255, channel]`` half-closes that
channel, which is how a client says stdin has ended.

``GET /attach/...`` speaks the same protocol: see :mod:`bosun.agent.attach_server`.

Problems found before the command starts (unknown pod, container not running, no command)
are plain HTTP errors with a readable text body, answered before any upgrade: the API
server turns them into a ``Status`` for the client. A request without a WebSocket upgrade
that would otherwise be valid gets 426, which tells the API server everything checks out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from bosun.agent.runtime.base import ContainerState, ContainerStatus, DriverError, ExecProcess, RuntimeDriver
from bosun.aio import cancel_and_wait

log = logging.getLogger(__name__)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
# How long a tty session waits for the client's first resize before starting the command,
# so that the command sees the real terminal size from its first instruction.
FIRST_RESIZE_WAIT = 1.0
READ_CHUNK = 32 * 1024


def _flag(query: Any, name: str, default: bool = False) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() in ("1", "true")


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int) -> dict[str, Any]:
    """What kubelet reports for a non-zero exit: kubectl reads the code from the cause."""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command, exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message}


def _pod_not_here(ns: str, name: str) -> web.Response:
    return web.Response(status=404, text=f'pod "{name}" not found in namespace "{ns}" on this node\n')


def _not_running(pod: str, container: str) -> web.Response:
    return web.Response(status=400, text=f'container "{container}" in pod "{pod}" is not running\n')


async def _upgrade(request: web.Request, verb: str) -> web.WebSocketResponse | web.Response:
    """The prepared WebSocket; or, to a request that is not an upgrade to one of
    :data:`PROTOCOLS`, the 426 that tells the API server everything else checks out."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol not in PROTOCOLS:
        return web.Response(status=426, text=f"{verb} needs a WebSocket upgrade with subprotocol "
                                             f"{' or '.join(PROTOCOLS)}\n")
    await ws.prepare(request)
    return ws


class ExecHandler:
    """Serves exec for the pods bound to this node through whatever runtime driver it has."""

    def __init__(self, driver: RuntimeDriver, find_pod: Callable[[str, str], dict[str, Any] | None]) -> None:
        self.driver = driver
        self.find_pod = find_pod

    async def _running(self, pod: dict[str, Any], container: str) -> ContainerStatus | None:
        uid = pod["metadata"]["uid"]
        running = [st for st in await self.driver.list_containers(uid)
                   if st.name == container and st.state == ContainerState.RUNNING]
        return max(running, key=lambda st: st.attempt) if running else None

    async def _container_id(self, pod: dict[str, Any], container: str) -> str | None:
        st = await self._running(pod, container)
        return st.id if st else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        q = request.query
        command = q.getall("command", [])
        tty, want_stdin = _flag(q, "tty"), _flag(q, "stdin")
        want_stdout, want_stderr = _flag(q, "stdout", True), _flag(q, "stderr", True) and not tty
        if not command:
            return web.Response(status=400, text="you must specify at least one command for the container\n")
        pod = self.find_pod(ns, name)
        if pod is None:
            return _pod_not_here(ns, name)
        cid = await self._container_id(pod, container)
        if cid is None:
            return _not_running(name, container)
        ws = await _upgrade(request, "exec")
        if not isinstance(ws, web.WebSocketResponse):
            return ws
        session = _Session(ws, ws.ws_protocol == PROTOCOLS[0], want_stdout, want_stderr)
        try:
            await session.run(lambda: self.driver.exec(cid, command, tty=tty, stdin=want_stdin), tty)
        finally:
            await ws.close()
        return ws


class _Session:
    """One exec: pumps the process's output to the client and the client's frames to it."""

    def __init__(self, ws: web.WebSocketResponse, v5: bool, stdout: bool, stderr: bool) -> None:
        self.ws = ws
        self.v5 = v5
        self.want_stdout = stdout
        self.want_stderr = stderr
        self.proc: ExecProcess | None = None
        self._pending: list[tuple[int, bytes]] = []
        self._stdin_closed = False

    async def _send(self, channel: int, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(bytes([channel]) + data)

    async def run(self, start: Callable[[], Any], tty: bool) -> None:
        if tty:
            await self._await_first_resize()
        try:
            self.proc = await start()
        except DriverError as e:
            await self._send(ERROR, json.dumps(failure_status(e.message)).encode())
            return
        proc = self.proc
        assert proc is not None
        # The terminal size first, before anything yields to the loop: the command is
        # already starting and must not see a 0x0 terminal.
        for channel, data in self._pending:
            if channel == RESIZE:
                self._resize(data)
        # An empty frame on the first output channel tells the client the streams are open.
        await self._send(STDOUT if self.want_stdout else STDERR if self.want_stderr else ERROR, b"")
        for channel, data in self._pending:
            if channel != RESIZE:
                await self._deliver(channel, data)
        self._pending.clear()
        reader = asyncio.create_task(self._read_client(), name="exec-client")
        pumps = {asyncio.create_task(self._pump(proc.stdout, STDOUT, self.want_stdout))}
        if proc.stderr is not None:
            pumps.add(asyncio.create_task(self._pump(proc.stderr, STDERR, self.want_stderr)))
        try:
            # Output ends when the command (and whatever kept its streams) is gone; the
            # client going away ends the session early.
            pending = set(pumps)
            while pending:
                done, _ = await asyncio.wait(pending | {reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    proc.kill()
                    return
                pending -= done
            code = await proc.wait()
            status = success_status() if code == 0 else exit_status(code)
            await self._send(ERROR, json.dumps(status).encode())
        finally:
            await cancel_and_wait(reader)
            for p in pumps:
                await cancel_and_wait(p)
            with contextlib.suppress(ProcessLookupError, OSError):
                if proc.stdin is not None:
                    proc.stdin.close()

    async def _await_first_resize(self) -> None:
        """Hold frames until a resize arrives (kubectl sends one right away) or time is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_RESIZE_WAIT
        while (left := deadline - loop.time()) > 0:
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                return
            data = _payload(msg)
            if data is None:
                return
            if data:
                self._pending.append((data[0], data[1:]))
                if data[0] == RESIZE:
                    return

    async def _pump(self, stream: asyncio.StreamReader, channel: int, forward: bool) -> None:
        while True:
            try:
                chunk = await stream.read(READ_CHUNK)
            except OSError:  # a pty whose last user went away reads as EIO: that is its EOF
                return
            if not chunk:
                return
            if forward:
                await self._send(channel, chunk)

    async def _read_client(self) -> None:
        for _ in iter(int, 1):
            data = _payload(await self.ws.receive())
            if data is None:
                return
            if data:
                await self._deliver(data[0], data[1:])

    async def _deliver(self, channel: int, data: bytes) -> None:
        proc = self.proc
        assert proc is not None
        if channel == STDIN and proc.stdin is not None and not self._stdin_closed:
            if data:
                proc.stdin.write(data)
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.drain()
        elif channel == RESIZE:
            self._resize(data)
        elif channel == CLOSE and self.v5 and data[:1] == bytes([STDIN]):
            self._close_stdin()

    def _resize(self, data: bytes) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            size = json.loads(data)
            self.proc.resize(int(size["Width"]), int(size["Height"]))

    def _close_stdin(self) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or self._stdin_closed:
            return
        self._stdin_closed = True
        with contextlib.suppress(ConnectionError, OSError):
            if proc.stdin.can_write_eof():
                proc.stdin.write_eof()
            else:
                proc.stdin.close()


def _payload(msg: aiohttp.WSMessage) -> bytes | None:
    """The frame's bytes (channel byte first), b"" for control frames, None once closed."""
    if msg.type == aiohttp.WSMsgType.BINARY:
        return bytes(msg.data)
    if msg.type == aiohttp.WSMsgType.TEXT:
        # Some clients (the Python client) send text frames whose first character is the channel.
        return str(msg.data).encode("utf-8")
    if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
        return b""
    return None
