"""Port-forward over the WebSocket channel protocol (``v4.channel.k8s.io``, also offered as
``v5``), what kubelet serves to clients that do not tunnel SPDY: the official Python client's
``portforward``, for one.

The ports are fixed by the request (``?port=80&port=8080``, one connection each). Port number
``i`` of the list has two channels: data ``2i`` (both ways) and error ``2i+1`` (to the client
only). Each channel's first message from the server is the port number, 2 bytes
little-endian, so the client can check the mapping; then data frames are ``[channel] + bytes``
and an error is one message on the error channel. The WebSocket ends when every connection
to the pod has ended (this protocol has no per-channel close the client would understand).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from bosun.aio import cancel_and_wait

log = logging.getLogger(__name__)

CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "v5.channel.k8s.io")
READ_CHUNK = 32 * 1024
UPLOAD_FRAMES = 64

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def parse_ports(values: list[str]) -> list[int] | str:
    """The ports of ``port`` query values (each may hold a comma-separated list), or why not."""
    ports: list[int] = []
    for value in values:
        for item in value.split(","):
            if not item.strip().isdigit() or not 0 < int(item) < 65536:
                return f"invalid port {item.strip()!r}: it must be a number from 1 to 65535"
            ports.append(int(item))
    if not ports:
        return 'query parameter "port" is required'
    return ports


async def serve(ws: web.WebSocketResponse, ports: list[int], dial: Dial, what: str) -> None:
    """Forward each port of ``ports`` over ``ws`` until all of them ended or the client left."""
    uploads: list[asyncio.Queue[bytes | None]] = [asyncio.Queue(UPLOAD_FRAMES) for _ in ports]
    for i, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        await ws.send_bytes(bytes([2 * i]) + prefix)
        await ws.send_bytes(bytes([2 * i + 1]) + prefix)
    forwards = [asyncio.create_task(_forward(ws, i, port, uploads[i], dial, what)) for i, port in enumerate(ports)]
    client = asyncio.create_task(_from_client(ws, uploads, forwards))
    try:
        while not client.done() and not all(f.done() for f in forwards):
            await asyncio.wait({*forwards, client}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*forwards, client):
            await cancel_and_wait(task)


async def _from_client(ws: web.WebSocketResponse, uploads: list[asyncio.Queue[bytes | None]],
                       forwards: list[asyncio.Task[None]]) -> None:
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], bytes(msg.data[1:])
        i = channel // 2
        if channel % 2 == 0 and i < len(uploads) and data and not forwards[i].done():
            await uploads[i].put(data)


async def _forward(ws: web.WebSocketResponse, i: int, port: int, upload: asyncio.Queue[bytes | None], dial: Dial,
                   what: str) -> None:
    try:
        reader, writer = await dial(port)
    except OSError as e:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(bytes([2 * i + 1]) + f"error forwarding port {port} to {what}: {e}".encode())
        return
    pump = asyncio.create_task(_upload(upload, writer))
    try:
        while chunk := await reader.read(READ_CHUNK):
            await ws.send_bytes(bytes([2 * i]) + chunk)
    except (ConnectionError, RuntimeError, OSError) as e:
        log.debug("port-forward to %s, port %d: %s", what, port, e)
    finally:
        await cancel_and_wait(pump)
        writer.close()
        while not upload.empty():  # wakes a client reader blocked on this full queue
            upload.get_nowait()


async def _upload(upload: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while (chunk := await upload.get()) is not None:
            writer.write(chunk)
            await writer.drain()
