"""Serve requests from components in the API server's own process without HTTP.

The scheduler and controllers of ``bosun server`` share the API server's event loop; over
HTTPS each of their requests pays for TLS, a socket round trip, HTTP parsing and aiohttp's
client and server machinery on that one thread. Here a request goes through the same
router, middlewares (metrics, authentication, error -> ``Status``) and handlers as one
from the network, on a small request object that offers what the handlers read of
``web.Request``; the answer is taken from the response object without serialising it.
Streaming handlers (watch, logs) write into a local writer whose chunks the caller reads
from a bounded queue, the in-process counterpart of TCP back-pressure.

A local watch may also ask for its events as objects (``stream(..., events=True)``): the
watch handler then hands over the watch cache's decoded objects instead of JSON lines, so an
in-process informer neither serialises nor parses each event. Those objects are shared with
the server's cache and every other watcher: a consumer must treat them as read-only, which is
client-go's rule for informer caches too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import HeadersMixin
from aiohttp.http_writer import HttpVersion11
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A query: a mapping, or (name, value) pairs when a name repeats (``match[]=a&match[]=b``).
Params = Mapping[str, str] | Sequence[tuple[str, str]]


class Middleware(Protocol):
    def __call__(self, request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]: ...


STREAM_QUEUE_CHUNKS = 64
SHUTDOWN_TIMEOUT = 1.0
_EOF = b""

WatchEvents = list[tuple[str, dict[str, Any]]]
# Set on a local watch request that wants objects: where the watch handler puts its events.
EVENT_SINK = web.RequestKey("bosun.event_sink", object)


class _Body:
    """``request.content``: the body is all here already."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = len(self._data) - self._pos
        chunk = bytes(self._data[self._pos:self._pos + n])
        self._pos += len(chunk)
        return chunk


class _Writer(AbstractStreamWriter):
    """Where a prepared (streaming) response's bytes go: a list for a unary call, a queue
    for a stream. ``started`` is set once a streaming response's status and headers are final."""

    def __init__(self, queue: asyncio.Queue[bytes | WatchEvents | None] | None = None) -> None:
        self.buffer_size = 0
        self.output_size = 0
        self.length = None
        self.chunks: list[bytes] = []
        self.queue = queue
        self.closed = False
        self.started = asyncio.Event() if queue is not None else None
        self.status = 0
        self.headers: Mapping[str, str] = {}

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise ConnectionResetError("the local client went away")
        data = bytes(chunk)
        if not data:
            return
        self.output_size += len(data)
        if self.queue is None:
            self.chunks.append(data)
        else:
            await self.queue.put(data)

    async def put_events(self, events: WatchEvents) -> None:
        """A batch of watch events as objects (see the module docstring)."""
        if self.closed:
            raise ConnectionResetError("the local client went away")
        if events:
            assert self.queue is not None
            await self.queue.put(events)

    async def write_eof(self, chunk: bytes = b"") -> None:
        if chunk:
            await self.write(chunk)
        if self.queue is not None and not self.closed:
            await self.queue.put(_EOF)

    async def drain(self) -> None:
        """Back-pressure is the bounded queue itself."""

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        """Nothing to compress in memory."""

    def enable_chunking(self) -> None:
        """Chunks are kept apart anyway."""

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        self.status = int(status_line.split(" ", 2)[1])
        self.headers = headers
        if self.started is not None:
            self.started.set()

    def send_headers(self) -> None:
        """Headers are read from the response object, never sent."""


class LocalRequest(HeadersMixin):
    """What the API's handlers and middlewares read of ``web.Request``, and what
    ``StreamResponse.prepare`` needs of it."""

    version = HttpVersion11
    keep_alive = True

    def __init__(
        self, method: str, path: str, params: Params, body: bytes | None,
        headers: Mapping[str, str], writer: _Writer,
    ) -> None:
        self.method = method
        self.path = path
        self.query: MultiDictProxy[str] = MultiDictProxy(MultiDict(params))
        hdrs: CIMultiDict[str] = CIMultiDict(headers)
        if body:
            hdrs["Content-Length"] = str(len(body))
        self._headers: CIMultiDictProxy[str] = CIMultiDictProxy(hdrs)
        self.content = _Body(body or b"")
        self.match_info: Any = None
        self._payload_writer = writer
        self._rel_url: URL | None = None
        self._state: dict[object, Any] = {}  # web.Request's per-request storage

    def get(self, key: object, default: Any = None) -> Any:
        return self._state.get(key, default)

    def __setitem__(self, key: object, value: Any) -> None:
        self._state[key] = value

    def __getitem__(self, key: object) -> Any:
        return self._state[key]

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._headers

    @property
    def transport(self) -> None:
        """No connection, so no TLS and no client certificate: the caller is in this process."""
        return None

    @property
    def rel_url(self) -> URL:
        if self._rel_url is None:
            self._rel_url = URL.build(path=self.path)
        return self._rel_url

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        """aiohttp runs on_response_prepare signals here; the API's one (the APF headers) is for
        HTTP clients, and an in-process caller reads none of them."""


class _LocalStream:
    def __init__(self, task: asyncio.Task[web.StreamResponse], writer: _Writer,
                 read_timeout: float | None) -> None:
        self._task = task
        self._writer = writer
        self._read_timeout = read_timeout
        self.status = 0
        self.headers: Mapping[str, str] = {}
        self._whole: bytes | None = None  # the body of an unprepared (unary) response

    async def start(self) -> None:
        """Wait until the handler has started streaming or has returned a plain answer."""
        assert self._writer.started is not None
        started = asyncio.ensure_future(self._writer.started.wait())
        try:
            await asyncio.wait((self._task, started), return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if self._writer.started.is_set():
            self.status, self.headers = self._writer.status, self._writer.headers
        else:
            resp = self._task.result()
            self.status, self.headers = resp.status, resp.headers
            self._whole = _body_of(resp, self._writer)

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        async for item in self._items():
            if isinstance(item, list):  # events handed over as objects: the wire form
                item = b"".join(orjson.dumps({"type": t, "object": o}) + b"\n" for t, o in item)
            yield item

    async def _items(self) -> AsyncIterator[bytes | WatchEvents]:
        if self._whole is not None:
            if self._whole:
                yield self._whole
            return
        queue = self._writer.queue
        assert queue is not None
        while True:
            if queue.empty() and self._task.done():
                if not self._task.cancelled() and self._task.exception() is None:
                    return  # returned without write_eof: aiohttp would end the answer for it
                # It failed, or the server stopped: a connection cut mid-answer.
                raise ConnectionResetError("the API server ended the stream")
            if self._read_timeout is None:
                chunk = await queue.get()
            else:
                async with asyncio.timeout(self._read_timeout):
                    chunk = await queue.get()
            if chunk is None:
                continue  # the handler has ended (see handler_done): decide above
            if chunk is _EOF or not chunk:
                return
            yield chunk

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The watch events of a stream opened with ``events=True``, as (type, object)."""
        async for item in self._items():
            if isinstance(item, list):
                for ev in item:
                    yield ev
            else:  # bytes: a handler that wrote lines after all
                for line in item.splitlines():
                    if line.strip():
                        ev = orjson.loads(line)
                        yield str(ev.get("type")), ev.get("object") or {}

    def handler_done(self, task: asyncio.Task[web.StreamResponse]) -> None:
        """Wake a reader blocked on an empty queue; when the queue is full the reader will
        find it drained and the task done without this marker."""
        queue = self._writer.queue
        assert queue is not None
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)

    async def close(self) -> None:
        """End the handler as a dropped connection would. Waiting with ``asyncio.wait``
        rather than awaiting the task keeps a cancellation of the caller its own."""
        self._writer.closed = True
        self._task.cancel()
        await asyncio.wait((self._task,))
        if not self._task.cancelled():
            self._task.exception()  # retrieved: a failure mid-stream was the reader's to see


def _body_of(resp: web.StreamResponse, writer: _Writer) -> bytes:
    if isinstance(resp, web.Response) and not resp.prepared and writer.output_size == 0:
        body = resp.body
        if body is None:
            return b""
        if isinstance(body, bytes | bytearray):
            return bytes(body)
        raise TypeError(f"a local request cannot carry a {type(body).__name__} body")
    return b"".join(writer.chunks)


class LocalDispatcher:
    """The API server's in-process entry point; see the module docstring."""

    def __init__(self, app: web.Application, middlewares: Sequence[Middleware]) -> None:
        self.app = app
        self.middlewares = list(middlewares)
        self.closed = False
        self._chains: dict[Handler, Handler] = {}
        self._streams: set[_LocalStream] = set()
        self._inflight: set[asyncio.Task[tuple[int, Mapping[str, str], bytes]]] = set()

    def _chain(self, handler: Handler) -> Handler:
        chain = self._chains.get(handler)
        if chain is None:
            chain = handler
            for m in reversed(self.middlewares):
                chain = functools.partial(m, handler=chain)
            if len(self._chains) < 256:  # route handlers only; error handlers are made per miss
                self._chains[handler] = chain
        return chain

    async def _dispatch(self, req: LocalRequest) -> web.StreamResponse:
        if self.closed:
            raise ConnectionRefusedError("the API server is stopped")
        request = cast(web.Request, req)
        match = await self.app.router.resolve(request)
        req.match_info = match
        return await self._chain(match.handler)(request)

    async def request(
        self, method: str, path: str, params: Params, body: bytes | None, headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes]:
        # The handler runs in a task of its own, shielded from the caller: cancelling a
        # caller must not stop a write half way (aiohttp lets a handler finish when its
        # client goes away; a rollback that runs only on Exception would be skipped). It
        # also makes every request suspend its caller, as a round trip does, so a component
        # that loops on requests cannot starve the loop.
        if self.closed:
            raise ConnectionRefusedError("the API server is stopped")
        task = asyncio.get_running_loop().create_task(self._serve(method, path, params, body, headers))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def _serve(
        self, method: str, path: str, params: Params, body: bytes | None, headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes]:
        writer = _Writer()
        resp = await self._dispatch(LocalRequest(method, path, params, body, headers, writer))
        return resp.status, resp.headers, _body_of(resp, writer)

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, params: Mapping[str, str], headers: Mapping[str, str], read_timeout: float | None,
        *, events: bool = False,
    ) -> AsyncIterator[_LocalStream]:
        """A long-running GET; ``events``: a watch hands its events over as shared objects
        (read them with ``events()``; see the module docstring)."""
        if self.closed:
            raise ConnectionRefusedError("the API server is stopped")
        writer = _Writer(asyncio.Queue(STREAM_QUEUE_CHUNKS))
        req = LocalRequest("GET", path, params, None, headers, writer)
        if events:
            req[EVENT_SINK] = writer.put_events
        task = asyncio.get_running_loop().create_task(self._dispatch(req), name=f"local-stream {path}")
        stream = _LocalStream(task, writer, read_timeout)
        task.add_done_callback(stream.handler_done)
        self._streams.add(stream)
        try:
            await stream.start()
            yield stream
        finally:
            self._streams.discard(stream)
            await stream.close()

    async def close(self) -> None:
        """Refuse new requests, cut open streams and give requests being served a moment to
        finish, as stopping the HTTP listener does (its shutdown_timeout is 1 s)."""
        self.closed = True
        for stream in list(self._streams):
            await stream.close()
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=SHUTDOWN_TIMEOUT)

