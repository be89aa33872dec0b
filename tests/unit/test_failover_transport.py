"""The agent's transport to several managers (bosun.client.failover) against real HTTP servers
on loopback: a server that refuses connections is skipped at once, requests and streams go to
the one that answers, and it stays the current one."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bosun.client.failover import FailoverTransport, parse_servers


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def answering() -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.path}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_refusing_server_is_skipped_and_the_answering_one_kept(answering: str) -> None:
    gone = f"http://127.0.0.1:{closed_port()}"
    t = FailoverTransport([gone, answering], False, timeout=5)
    try:
        status, _, body = await t.request("GET", "/a", {}, None, {})
        assert (status, body) == (200, b"hello /a")
        assert t.server == answering
        async with t.stream("/b", {}, {}, 5) as s:
            assert await s.read() == b"hello /b"
        assert t.server == answering
    finally:
        await t.close()


async def test_every_server_refusing_raises_and_new_servers_are_learned(answering: str) -> None:
    t = FailoverTransport([f"http://127.0.0.1:{closed_port()}"], False, timeout=5)
    try:
        with pytest.raises(aiohttp.ClientConnectorError):
            await t.request("GET", "/", {}, None, {})
        assert t.add_servers([answering + "/", t.servers[0]]) == [answering]
        assert t.add_servers([answering]) == []
        status, _, _ = await t.request("GET", "/", {}, None, {})
        assert status == 200
    finally:
        await t.close()


def test_parse_servers() -> None:
    assert parse_servers(" https://a:1/, https://b:2 ,") == ["https://a:1", "https://b:2"]
