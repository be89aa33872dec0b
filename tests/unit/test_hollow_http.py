"""The hollow kubelets' lean HTTP client against a real aiohttp server: answers framed by
length or in chunks, connections kept and reused, a connection the server dropped while idle
replaced without the caller noticing, refusals turned into ApiError with the server's Status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from bosun.client.errors import ApiError
from bosun.client.kubeconfig import ClusterConfig
from bosun.hollow.http import LeanHttp


async def _ok(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"method": request.method, "type": request.content_type, "len": len(body),
                              "peer": request.transport.get_extra_info("peername")[1] if request.transport else 0})


async def _chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for part in (b'{"a":', b'1}'):
        await resp.write(part)
    await resp.write_eof()
    return resp


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.5)
    return web.json_response({})


async def _missing(request: web.Request) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                              "reason": "NotFound", "message": 'pods "x" not found'}, status=404)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/ok", _ok)
    app.router.add_get("/chunked", _chunked)
    app.router.add_route("*", "/missing", _missing)
    app.router.add_get("/slow", _slow)
    runner = web.AppRunner(app, keepalive_timeout=0.2)  # idle connections dropped quickly
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_requests_reuse_a_kept_alive_connection(server: str) -> None:
    http = LeanHttp(ClusterConfig(server=server), connections=1)
    try:
        status, raw = await http.request("PATCH", "/ok", b'{"x":1}', b"application/merge-patch+json")
        first = orjson.loads(raw)
        assert status == 200
        assert (first["method"], first["type"], first["len"]) == ("PATCH", "application/merge-patch+json", 7)
        second = orjson.loads((await http.request("GET", "/ok"))[1])
        assert first["peer"] == second["peer"]  # the same client port: the same connection
        status, body = await http.request("GET", "/chunked")
        assert (status, body) == (200, b'{"a":1}')
    finally:
        await http.close()


async def test_a_connection_dropped_while_idle_is_replaced(server: str) -> None:
    http = LeanHttp(ClusterConfig(server=server), connections=1)
    try:
        assert (await http.request("GET", "/ok"))[0] == 200
        await asyncio.sleep(0.6)  # the server closes the idle connection
        assert (await http.request("GET", "/ok"))[0] == 200
        await asyncio.gather(*(http.patch("/ok", {"i": i}) for i in range(20)))
        assert http.requests == 22
    finally:
        await http.close()


async def test_refusals_raise_api_errors_with_the_servers_status(server: str) -> None:
    http = LeanHttp(ClusterConfig(server=server, token="t0ken"))
    try:
        with pytest.raises(ApiError) as err:
            await http.patch("/missing", {"status": {}})
        assert err.value.status == 404 and err.value.reason == "NotFound" and "not found" in str(err.value)
    finally:
        await http.close()


async def test_a_request_without_an_answer_times_out_and_the_client_goes_on(server: str) -> None:
    http = LeanHttp(ClusterConfig(server=server), connections=2, timeout=0.4)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(http.request("GET", "/slow"), 3)
        assert (await http.request("GET", "/ok"))[0] == 200
    finally:
        await http.close()
