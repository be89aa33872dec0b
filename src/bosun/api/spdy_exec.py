"""exec and attach for clients that upgrade to SPDY instead of WebSocket: kubectl before 1.30,
or later with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``, and client libraries built on
client-go's SPDY executor.

Such a client opens one SPDY stream per channel, each named by a ``streamType`` header
(``error``, ``stdin``, ``stdout``, ``stderr``, ``resize``), and speaks the remote command
protocol ``v4.channel.k8s.io`` on them. The node agent serves the same protocol over a
WebSocket, one channel byte per message (:mod:`bosun.agent.exec_server`). So this module
translates, and nothing more: client streams become agent channels and back; the end of the
client's stdin stream becomes v5's close signal for channel 0; the Status the agent sends
on the error channel ends the error stream, which is how the client learns the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

from bosun import spdy
from bosun.aio import cancel_and_wait
from bosun.api import spdy_upgrade

REMOTE_COMMAND = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
CHANNELS = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}
# How long a client has to open its streams after the upgrade (kubectl does it at once).
OPEN_WITHIN = 10.0
# After the command ends, how long the client has to hang up before the connection is closed.
LINGER = 2.0


def offers_remote_command(request: web.Request) -> bool:
    offered = ",".join(request.headers.getall("X-Stream-Protocol-Version", []))
    return REMOTE_COMMAND in [p.strip() for p in offered.split(",")]


def expected_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> set[int]:
    """The channels a client opens for these flags (with a terminal, stderr is merged into
    stdout and a resize stream is added)."""
    wanted = {ERROR}
    wanted |= {STDIN} if stdin else set()
    wanted |= {STDOUT} if stdout else set()
    wanted |= {STDERR} if stderr and not tty else set()
    wanted |= {RESIZE} if tty else set()
    return wanted


class _Session:
    """One client connection's streams, by channel."""

    def __init__(self, conn: spdy_upgrade.Upgraded, upstream: aiohttp.ClientWebSocketResponse,
                 expected: set[int]) -> None:
        self.conn = conn
        self.upstream = upstream
        self.codec = spdy.Codec()
        self.streams: dict[int, int] = {}  # channel -> stream id
        self.channels: dict[int, int] = {}  # stream id -> channel
        self.finished: set[int] = set()
        self.expected = expected
        self.opened = asyncio.Event()
        self.hung_up = asyncio.Event()

    def write(self, data: bytes) -> None:
        if not self.conn.transport.is_closing():
            self.conn.transport.write(data)

    async def from_client(self) -> None:
        """Client frames: streams opened, stdin and resizes forwarded, pings answered."""
        try:
            while (data := await self.conn.read()) is not None:
                for frame in self.codec.feed(data):
                    await self._frame(frame)
        except spdy.ProtocolError:
            pass
        finally:
            self.hung_up.set()

    async def _frame(self, frame: spdy.Frame) -> None:
        if frame.ftype == spdy.SYN_STREAM:
            self.write(self.codec.syn_reply(frame.stream_id))
            channel = CHANNELS.get(frame.headers.get("streamtype", ""))
            if channel is None:
                self.write(spdy.rst_stream(frame.stream_id, spdy.REFUSED_STREAM))
                return
            self.streams[channel] = frame.stream_id
            self.channels[frame.stream_id] = channel
            if self.expected <= self.streams.keys():
                self.opened.set()
        elif frame.ftype == 0:
            channel = self.channels.get(frame.stream_id)
            if channel == STDIN:
                if frame.data:
                    await self.upstream.send_bytes(bytes([STDIN]) + frame.data)
                if frame.fin:
                    await self.upstream.send_bytes(bytes([CLOSE, STDIN]))
            elif channel == RESIZE:
                # One JSON object per resize; a frame may carry several.
                for line in frame.data.splitlines():
                    if line.strip():
                        await self.upstream.send_bytes(bytes([RESIZE]) + line)
        elif frame.ftype == spdy.PING:
            self.write(spdy.ping(frame.value))
        elif frame.ftype == spdy.GOAWAY:
            self.hung_up.set()

    async def to_client(self) -> None:
        """Agent messages onto the client's streams; the error channel's Status ends its stream."""
        async for msg in self.upstream:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            stream = self.streams.get(channel)
            if stream is None or stream in self.finished:
                continue
            if channel == ERROR:
                self.finished.add(stream)
            if payload or channel == ERROR:
                self.write(spdy.data(stream, payload, fin=channel == ERROR))

    def finish(self) -> None:
        """End every stream the server writes to (the client waits for these ends)."""
        for channel in (STDOUT, STDERR, ERROR):
            stream = self.streams.get(channel)
            if stream is not None and stream not in self.finished:
                self.finished.add(stream)
                self.write(spdy.data(stream, b"", fin=True))


async def serve(request: web.Request, upstream: aiohttp.ClientWebSocketResponse,
                expected: set[int]) -> web.StreamResponse:
    """Answer the upgrade, wait for the client's streams, relay until the command ends."""
    conn = await spdy_upgrade.upgrade(request, REMOTE_COMMAND)
    session = _Session(conn, upstream, expected)
    reader = asyncio.create_task(session.from_client())
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.opened.wait(), OPEN_WITHIN)
        if session.opened.is_set():
            relay = asyncio.create_task(session.to_client())
            hang_up = asyncio.create_task(session.hung_up.wait())
            with contextlib.suppress(ConnectionError, RuntimeError):
                await asyncio.wait([relay, hang_up], return_when=asyncio.FIRST_COMPLETED)
            await cancel_and_wait(relay)
            await cancel_and_wait(hang_up)
            session.finish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.hung_up.wait(), LINGER)
    finally:
        await cancel_and_wait(reader)
        await upstream.close()
        conn.transport.close()
    return conn.response
