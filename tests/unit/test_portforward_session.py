"""The agent's port-forward SPDY session, fed the frames kubectl sends, forwarding to a real TCP
server on loopback: data both ways, pings answered, a port header that is not a port, an
unknown stream type, and a client reset that closes the pod-side connection."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator, Callable

import pytest

from bosun import spdy
from bosun.agent.netns_dial import dial_localhost
from bosun.agent.portforward import Session

pytestmark = pytest.mark.timeout(30)


class Client:
    """kubectl's side: builds frames and reads what the session sends back."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=spdy.DICTIONARY)
        self.inbox = spdy.Codec()
        self.frames: list[spdy.Frame] = []
        self.arrived = asyncio.Event()

    async def receive(self, data: bytes) -> None:
        self.frames += self.inbox.feed(data)
        self.arrived.set()

    def syn(self, stream_id: int, **headers: str) -> bytes:
        block = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode() for k, v in headers.items())
        payload = struct.pack(">IIH", stream_id, 0, 0) + self.deflate.compress(block) + self.deflate.flush(
            zlib.Z_SYNC_FLUSH)
        return struct.pack(">IB", 0x80030001, 0) + len(payload).to_bytes(3, "big") + payload

    async def wait_for(self, check: Callable[[], bool], within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not check():
                self.arrived.clear()
                await self.arrived.wait()

    def data_on(self, stream_id: int) -> bytes:
        return b"".join(f.data for f in self.frames if f.ftype == 0 and f.stream_id == stream_id)

    def fin_on(self, stream_id: int) -> bool:
        return any(f.ftype == 0 and f.stream_id == stream_id and f.fin for f in self.frames)


@pytest.fixture
async def echo_port() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """An echo server's port, and an event set when a connection to it ends."""
    ended = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()
        ended.set()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], ended


async def test_data_both_ways_pings_and_a_client_reset(echo_port: tuple[int, asyncio.Event]) -> None:
    port, ended = echo_port
    client = Client()
    session = Session(client.receive, lambda p: dial_localhost(None, p), "pod t/p, uid u")
    try:
        await session.feed(client.syn(1, streamtype="error", port=str(port), requestid="0")
                           + client.syn(3, streamtype="data", port=str(port), requestid="0")
                           + spdy.data(3, b"ping me") + spdy.ping(7))
        await client.wait_for(lambda: client.data_on(3) == b"ping me")
        assert [f.stream_id for f in client.frames if f.ftype == spdy.SYN_REPLY] == [1, 3]
        assert any(f.ftype == spdy.PING and f.value == 7 for f in client.frames)
        # kubectl's local connection dropped: it resets the data stream; the pod side closes and
        # the error stream ends without a message.
        await session.feed(spdy.rst_stream(3, spdy.CANCEL))
        await client.wait_for(lambda: client.fin_on(1))
        assert client.data_on(1) == b""
        async with asyncio.timeout(10):
            await ended.wait()
    finally:
        await session.close()


async def test_a_bad_port_and_an_unknown_stream_type() -> None:
    client = Client()
    session = Session(client.receive, lambda p: dial_localhost(None, p), "pod t/p, uid u")
    try:
        await session.feed(client.syn(1, streamtype="error", port="http", requestid="0")
                           + client.syn(3, streamtype="data", port="http", requestid="0")
                           + client.syn(5, streamtype="sideways", port="80", requestid="1"))
        await client.wait_for(lambda: client.fin_on(1) and client.fin_on(3))
        assert client.data_on(1).decode() == ("error forwarding port ? to pod t/p, uid u: "
                                              "invalid port 'http': it must be a number from 1 to 65535")
        assert any(f.ftype == spdy.RST_STREAM and f.stream_id == 5 for f in client.frames)
    finally:
        await session.close()
