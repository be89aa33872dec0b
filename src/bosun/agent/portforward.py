"""The agent's port-forward endpoint: ``kubectl port-forward`` connections into a pod.

``GET /portForward/{namespace}/{pod}``, a WebSocket with subprotocol
``SPDY/3.1+portforward.k8s.io`` (or the channel protocol of :mod:`.portforward_channels`,
for other clients, with ``?port=`` in the query): its binary messages carry a SPDY session (see
:mod:`bosun.spdy`), which the API server relays unchanged. For each local connection
kubectl opens two streams with the same ``requestID`` header: an ``error`` stream (kubectl
only reads it: one message, then the end, if forwarding failed) and a ``data`` stream (the
bytes of the connection both ways). Each pair becomes a TCP connection to ``localhost:port``
inside the pod's network namespace; pairs are independent, so one connection failing or
being dropped leaves the others and the session alone.

Ending, as kubectl expects it: when the pod's side closes, the data stream gets FIN; the
error stream always ends with FIN (after the message, if any) so kubectl stops waiting on it;
a client that resets the data stream (its local connection dropped) closes the pod connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bosun import spdy
from bosun.agent import portforward_channels as channels
from bosun.agent.netns_dial import dial_localhost
from bosun.agent.runtime.base import RuntimeDriver
from bosun.aio import cancel_and_wait

log = logging.getLogger(__name__)

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
READ_CHUNK = 32 * 1024
# Client bytes waiting for a slow pod, per connection. When full, the session stops reading
# (spdystream has no per-stream flow control either: its frame handler blocks the same way).
UPLOAD_FRAMES = 64

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@dataclass
class _Pair:
    """The two streams of one forwarded connection."""

    key: str
    port: int = 0
    bad_port: str = ""
    error_id: int = 0
    data_id: int = 0
    upload: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(UPLOAD_FRAMES))
    task: asyncio.Task[None] | None = None
    done: bool = False
    ended: bool = False  # both streams got their FIN from us


class Session:
    """One SPDY session: streams in, TCP connections out. ``send`` writes transport bytes."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], dial: Dial, what: str) -> None:
        self._send_raw = send
        self._dial = dial
        self._what = what  # "pod NAME, uid UID" for error messages
        self._codec = spdy.Codec()
        self._lock = asyncio.Lock()
        self._pairs: dict[str, _Pair] = {}
        self._by_stream: dict[int, _Pair] = {}

    async def _send(self, data: bytes) -> None:
        async with self._lock:
            await self._send_raw(data)

    async def feed(self, data: bytes) -> None:
        for frame in self._codec.feed(data):
            await self._on_frame(frame)

    async def _on_frame(self, frame: spdy.Frame) -> None:
        if frame.ftype == spdy.SYN_STREAM:
            await self._on_stream(frame)
        elif frame.ftype == spdy.PING:
            await self._send(spdy.ping(frame.value))
        elif frame.ftype == 0:
            await self._on_data(frame)
        elif frame.ftype == spdy.RST_STREAM:
            self._on_reset(frame.stream_id)

    async def _on_stream(self, frame: spdy.Frame) -> None:
        async with self._lock:  # reply and any later frame of this stream go out in order
            await self._send_raw(self._codec.syn_reply(frame.stream_id))
        h = frame.headers
        key, stream_type = h.get("requestid", str(frame.stream_id)), h.get("streamtype", "")
        if stream_type not in ("error", "data"):
            await self._send(spdy.rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        pair = self._pairs.setdefault(key, _Pair(key))
        port = h.get("port", "")
        if port.isdigit() and 0 < int(port) < 65536:
            pair.port = int(port)
        else:
            pair.bad_port = f"invalid port {port!r}: it must be a number from 1 to 65535"
        if stream_type == "error":
            pair.error_id = frame.stream_id
        else:
            pair.data_id = frame.stream_id
        self._by_stream[frame.stream_id] = pair
        if pair.error_id and pair.data_id and pair.task is None:
            pair.task = asyncio.create_task(self._forward(pair), name=f"portforward-{pair.port}")

    async def _on_data(self, frame: spdy.Frame) -> None:
        pair = self._by_stream.get(frame.stream_id)
        if pair is None or frame.stream_id != pair.data_id:
            return  # nothing is read from the error stream
        for item in ([frame.data] if frame.data else []) + ([None] if frame.fin else []):
            if pair.done:
                return
            await pair.upload.put(item)

    def _on_reset(self, stream_id: int) -> None:
        pair = self._by_stream.get(stream_id)
        if pair is not None and stream_id == pair.data_id and pair.task is not None:
            pair.task.cancel()  # the client dropped this connection: so do we

    async def _forward(self, pair: _Pair) -> None:
        try:
            with contextlib.suppress(ConnectionError, RuntimeError):  # the session itself ended
                await self._connect_and_copy(pair)
        finally:
            if not pair.ended:  # cancelled (client reset or session end): still end the error stream
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await asyncio.shield(self._send(spdy.data(pair.error_id, b"", fin=True)))
            self._forget(pair)

    async def _connect_and_copy(self, pair: _Pair) -> None:
        if pair.bad_port:
            await self._fail(pair, pair.bad_port)
            return
        try:
            reader, writer = await self._dial(pair.port)
        except OSError as e:
            await self._fail(pair, str(e))
            return
        upload = asyncio.create_task(self._upload(pair, writer))
        try:
            while chunk := await reader.read(READ_CHUNK):
                await self._send(spdy.data(pair.data_id, chunk))
            await self._send(spdy.data(pair.data_id, b"", fin=True) + spdy.data(pair.error_id, b"", fin=True))
            pair.ended = True
            await upload  # until the client half-closes too, or resets the stream
        except OSError as e:
            # The pod dropped this connection (a reset): it ends like a close, without an
            # error message, since kubectl gives up the whole session on any message.
            log.debug("port-forward to %s, port %d: %s", self._what, pair.port, e)
            if not pair.ended:
                pair.ended = True
                await self._send(spdy.data(pair.data_id, b"", fin=True) + spdy.data(pair.error_id, b"", fin=True))
        finally:
            await cancel_and_wait(upload)
            writer.close()

    async def _fail(self, pair: _Pair, reason: str) -> None:
        message = f"error forwarding port {pair.port or '?'} to {self._what}: {reason}"
        pair.ended = True
        await self._send(spdy.data(pair.error_id, message.encode(), fin=True)
                         + spdy.data(pair.data_id, b"", fin=True))

    async def _upload(self, pair: _Pair, writer: asyncio.StreamWriter) -> None:
        while (chunk := await pair.upload.get()) is not None:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    def _forget(self, pair: _Pair) -> None:
        pair.done = True
        while not pair.upload.empty():  # wakes a feed() blocked on this full queue
            pair.upload.get_nowait()
        self._pairs.pop(pair.key, None)
        self._by_stream.pop(pair.error_id, None)
        self._by_stream.pop(pair.data_id, None)

    async def close(self) -> None:
        for pair in list(self._pairs.values()):
            if pair.task is not None:
                await cancel_and_wait(pair.task)


class PortForwardHandler:
    """Serves port-forward for the pods bound to this node, into their sandbox's network."""

    def __init__(self, driver: RuntimeDriver, find_pod: Callable[[str, str], dict[str, Any] | None]) -> None:
        self.driver = driver
        self.find_pod = find_pod

    async def _netns(self, uid: str) -> tuple[bool, str | None]:
        """(found, netns path): a ready sandbox of the pod, None for the host's network."""
        for sandbox in await self.driver.list_sandboxes():
            if sandbox.pod_uid == uid and sandbox.ready:
                return True, sandbox.netns_path
        return False, None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        pod = self.find_pod(ns, name)
        if pod is None:
            return web.Response(status=404, text=f'pod "{name}" not found in namespace "{ns}" on this node\n')
        uid = str(pod["metadata"]["uid"])
        found, netns = await self._netns(uid)
        if not found:
            return web.Response(status=400, text=f'pod "{name}" has no running sandbox on this node\n')
        protocols = (PROTOCOL, *channels.CHANNEL_PROTOCOLS)
        ws = web.WebSocketResponse(protocols=protocols, autoping=True, max_msg_size=0)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol not in protocols:
            return web.Response(status=426, text="port-forward needs a WebSocket upgrade with subprotocol "
                                                 f"{' or '.join(protocols)}\n")
        ports = channels.parse_ports(request.query.getall("port", []))
        if ready.protocol != PROTOCOL and isinstance(ports, str):
            return web.Response(status=400, text=ports + "\n")
        await ws.prepare(request)
        what = f"pod {ns}/{name}, uid {uid}"
        if ready.protocol != PROTOCOL:
            assert not isinstance(ports, str)
            try:
                await channels.serve(ws, ports, lambda port: dial_localhost(netns, port), what)
            finally:
                await ws.close()
            return ws
        session = Session(ws.send_bytes, lambda port: dial_localhost(netns, port), what)
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                try:
                    await session.feed(bytes(msg.data))
                except spdy.ProtocolError as e:
                    log.info("port-forward to %s/%s: %s", ns, name, e)
                    await ws.send_bytes(spdy.goaway(0, 1))
                    break
        finally:
            await session.close()
            await ws.close()
        return ws
