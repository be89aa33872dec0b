"""The agent's attach endpoint: ``kubectl attach`` and ``kubectl run -it``, in the remote
command channel protocol of :mod:`bosun.agent.exec_server` (which the API server relays).

``GET /attach/{namespace}/{pod}/{container}?stdin=&stdout=&stderr=&tty=``. An interactive
container (``stdin`` or ``tty`` in its spec) is attached to its own stdio through the driver's
:class:`~bosun.agent.runtime.base.ContainerAttacher` ability: output from now on, the client's
input, and terminal resizes. Any other container (or a driver without that ability) gets
what it writes from now on, read from its log file so it works with any driver; input is
then ignored. Either way the session ends, with a Success status, when the container does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bosun.agent.exec_server import (
    CLOSE,
    ERROR,
    PROTOCOLS,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    _flag,
    _not_running,
    _payload,
    _pod_not_here,
    _upgrade,
    success_status,
)
from bosun.agent.runtime.base import Attachment, ContainerAttacher, ContainerState, ContainerStatus, RuntimeDriver
from bosun.aio import cancel_and_wait

ATTACH_POLL = 0.1


class AttachHandler:
    """Serves attach for the pods bound to this node through whatever runtime driver it has."""

    def __init__(self, driver: RuntimeDriver, find_pod: Callable[[str, str], dict[str, Any] | None]) -> None:
        self.driver = driver
        self.find_pod = find_pod

    async def _running(self, pod: dict[str, Any], container: str) -> ContainerStatus | None:
        running = [st for st in await self.driver.list_containers(pod["metadata"]["uid"])
                   if st.name == container and st.state == ContainerState.RUNNING]
        return max(running, key=lambda st: st.attempt) if running else None

    async def attach(self, request: web.Request) -> web.StreamResponse:
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        q = request.query
        want_stdout, want_stderr = _flag(q, "stdout", True), _flag(q, "stderr", True) and not _flag(q, "tty")
        pod = self.find_pod(ns, name)
        if pod is None:
            return _pod_not_here(ns, name)
        st = await self._running(pod, container)
        if st is None or st.log_path is None:
            return _not_running(name, container)
        ws = await _upgrade(request, "attach")
        if not isinstance(ws, web.WebSocketResponse):
            return ws
        attachment = await self.driver.attach(st.id) if isinstance(self.driver, ContainerAttacher) else None
        try:
            await ws.send_bytes(bytes([STDOUT if want_stdout else STDERR if want_stderr else ERROR]))
            if attachment is None:
                await self._stream_log(ws, st.id, st.log_path, want_stdout, want_stderr)
            else:
                await _bridge(ws, attachment, ws.ws_protocol == PROTOCOLS[0], want_stdout, want_stderr,
                              _flag(q, "stdin"))
        finally:
            if attachment is not None:
                attachment.close()
            await ws.close()
        return ws

    async def _stream_log(self, ws: web.WebSocketResponse, cid: str, path: Path, stdout: bool,
                          stderr: bool) -> None:
        """Forward the container's new log records by stream until it exits or the client leaves."""
        offset = _size(path)
        client = asyncio.create_task(_drain(ws), name="attach-client")
        buf = b""
        try:
            while not client.done():
                st = await self.driver.container_status(cid)
                alive = st is not None and st.state == ContainerState.RUNNING
                chunk = _read_from(path, offset)
                offset += len(chunk)
                *records, buf = (buf + chunk).split(b"\n")
                for channel, text in map(_cri_record, records):
                    if (stdout if channel == STDOUT else stderr) and text:
                        await ws.send_bytes(bytes([channel]) + text)
                if not alive:
                    await ws.send_bytes(bytes([ERROR]) + json.dumps(success_status()).encode())
                    return
                await asyncio.wait({client}, timeout=ATTACH_POLL)
        finally:
            await cancel_and_wait(client)


async def _bridge(ws: web.WebSocketResponse, attachment: Attachment, v5: bool, stdout: bool, stderr: bool,
                  stdin: bool) -> None:
    """Client frames to the container's stdin and terminal, its output to the client, until
    either ends: the container (Success status) or the client (detach)."""
    client = asyncio.create_task(_from_client(ws, attachment, v5, stdin), name="attach-input")
    try:
        while True:
            read = asyncio.ensure_future(attachment.read())
            done, _ = await asyncio.wait({read, client}, return_when=asyncio.FIRST_COMPLETED)
            if read not in done:
                await cancel_and_wait(read)
                return
            item = read.result()
            if item is None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(bytes([ERROR]) + json.dumps(success_status()).encode())
                return
            channel, data = item
            if stdout if channel == STDOUT else stderr:
                await ws.send_bytes(bytes([channel]) + data)
    finally:
        await cancel_and_wait(client)


async def _from_client(ws: web.WebSocketResponse, attachment: Attachment, v5: bool, stdin: bool) -> None:
    while (data := _payload(await ws.receive())) is not None:
        if not data:
            continue
        channel, body = data[0], data[1:]
        if channel == STDIN and stdin and body:
            await attachment.write(body)
        elif channel == RESIZE:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                size = json.loads(body)
                await attachment.resize(int(size["Width"]), int(size["Height"]))
        elif channel == CLOSE and v5 and body[:1] == bytes([STDIN]):
            await attachment.close_stdin()
def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _cri_record(record: bytes) -> tuple[int, bytes]:
    """(channel, text) of one CRI log line: ``<time> <stdout|stderr> <F|P> <text>``."""
    parts = record.split(b" ", 3)
    if len(parts) < 4:
        return STDOUT, b""
    channel = STDERR if parts[1] == b"stderr" else STDOUT
    return channel, parts[3] + (b"\n" if parts[2] == b"F" else b"")


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and drop) client frames until it goes away, so pings and close are answered."""
    while _payload(await ws.receive()) is not None:
        pass


