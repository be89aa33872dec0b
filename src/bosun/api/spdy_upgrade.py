"""Port-forward's SPDY fallback: a client that upgrades the HTTP connection itself to SPDY/3.1
(kubectl before 1.31, or with ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``) gets a 101, and from
then on the connection's raw bytes are carried as binary messages to the agent's tunnel
endpoint, which already speaks SPDY inside its WebSocket (:mod:`bosun.agent.portforward`).
So the API server never parses SPDY: it only moves bytes, as for the WebSocket tunnel.

aiohttp serves only WebSocket upgrades itself; like its WebSocket response, this takes the
connection over by giving the request's protocol a parser of its own that receives all
further bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from bosun.aio import cancel_and_wait

UPGRADE = "SPDY/3.1"
PORT_FORWARD = "portforward.k8s.io"
# Client bytes waiting for the agent: past this many chunks the connection stops being read.
HIGH_WATER, LOW_WATER = 64, 16


def wants_spdy(request: web.Request) -> bool:
    return (request.headers.get("Upgrade", "").strip().lower() == UPGRADE.lower()
            and "upgrade" in request.headers.get("Connection", "").lower())


def offers_port_forward(request: web.Request) -> bool:
    offered = ",".join(request.headers.getall("X-Stream-Protocol-Version", []))
    return PORT_FORWARD in [p.strip() for p in offered.split(",")]


class _RawParser:
    """Receives every byte of the connection once it is upgraded."""

    def __init__(self, queue: asyncio.Queue[bytes | None], transport: asyncio.Transport) -> None:
        self._queue = queue
        self._transport = transport

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._queue.put_nowait(bytes(data))
        if self._queue.qsize() > HIGH_WATER:
            self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._queue.put_nowait(None)


@dataclass
class Upgraded:
    """A connection answered with 101 and taken over: ``response`` is what the handler
    returns, ``queue`` gets every byte the client sends (None at its end), ``transport`` is
    where to write."""

    response: web.StreamResponse
    queue: asyncio.Queue[bytes | None]
    transport: asyncio.Transport

    async def read(self) -> bytes | None:
        """The client's next bytes (None at its end); reading resumes once the backlog is low."""
        data = await self.queue.get()
        if self.queue.qsize() < LOW_WATER:
            self.transport.resume_reading()
        return data


async def upgrade(request: web.Request, protocol: str) -> Upgraded:
    """Answer 101 (SPDY/3.1, stream protocol ``protocol``) and take the connection over."""
    resp = web.StreamResponse(status=101, headers={"Connection": "Upgrade", "Upgrade": UPGRADE,
                                                   "X-Stream-Protocol-Version": protocol})
    resp.force_close()
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None and isinstance(transport, asyncio.Transport)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    request.protocol.set_parser(_RawParser(queue, transport))  # type: ignore[arg-type]
    request.protocol.keep_alive(False)
    return Upgraded(resp, queue, transport)


async def serve(request: web.Request, upstream: aiohttp.ClientWebSocketResponse) -> web.StreamResponse:
    """Port-forward: answer the upgrade and relay bytes until either side ends."""
    conn = await upgrade(request, PORT_FORWARD)

    async def to_agent() -> None:
        while (data := await conn.read()) is not None:
            await upstream.send_bytes(data)

    async def to_client() -> None:
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.BINARY:
                conn.transport.write(msg.data)

    tasks = [asyncio.create_task(to_agent()), asyncio.create_task(to_client())]
    try:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            await cancel_and_wait(task)
        await upstream.close()
        conn.transport.close()
    return conn.response
