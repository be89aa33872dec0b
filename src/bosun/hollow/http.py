"""Plain HTTP/1.1 requests over kept-alive connections, for the hollow kubelets' writes.

A hollow process stands in for thousands of kubelets that would run on other machines, so
every CPU cycle it spends is borrowed from the API server under test. Its writes (one pod
status per pod, one Lease renewal per node and period) are small unary requests whose
answers it does not read; a general-purpose client (aiohttp: URL objects, header
multidicts, timers, response objects) spends several times more CPU per request than
writing the request's bytes and framing the answer with llhttp (httptools), which is all
this does.
Watches stay on the ordinary client.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools
import orjson

from bosun.client.errors import ApiError
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import ssl_context

JSON_PATCH = {"merge": b"application/merge-patch+json", "json": b"application/json",
              "strategic": b"application/strategic-merge-patch+json"}


class _Answer:
    """httptools' callbacks for one response: its body, whether it is complete, and whether
    its length is known (else it ends with the connection)."""

    __slots__ = ("body", "done", "framed", "keep", "parser")

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.done = False
        self.framed = False
        self.keep = False
        self.parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_headers_complete(self) -> None:
        # llhttp answers this only while the message is being parsed.
        self.keep = self.parser is not None and self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.done = True


class _Conn:
    __slots__ = ("reader", "since", "timed_out", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.since = 0.0  # loop time the request in progress was sent (0: idle)
        self.timed_out = False

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Give up on the request in progress: its reader fails at once."""
        self.timed_out = True
        self.writer.transport.abort()

    async def roundtrip(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send ``request``; (status, body, whether the connection may be reused).

        The answer is framed by llhttp (httptools): lengths, chunks, and answers that end
        with the connection."""
        self.writer.write(request)
        answer = _Answer()
        parser = answer.parser = httptools.HttpResponseParser(answer)
        while not answer.done:
            data = await self.reader.read(65536)
            if not data:
                if parser.get_status_code() and not answer.framed:
                    return parser.get_status_code(), b"".join(answer.body), False  # ended by close
                raise asyncio.IncompleteReadError(b"".join(answer.body), None)
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise ConnectionError(f"bad answer from the API server: {exc}") from exc
        return parser.get_status_code(), b"".join(answer.body), answer.keep


class LeanHttp:
    """Unary requests to one API server over at most ``connections`` kept-alive connections."""

    def __init__(self, config: ClusterConfig, *, connections: int = 64, timeout: float = 30) -> None:
        url = urlsplit(config.server)
        self.host = url.hostname or "127.0.0.1"
        self.tls = url.scheme == "https"
        self.port = url.port or (443 if self.tls else 80)
        ctx = ssl_context(config)
        self._ssl: ssl.SSLContext | None = None
        if self.tls:
            if isinstance(ctx, ssl.SSLContext):
                self._ssl = ctx
            else:  # insecure-skip-tls-verify
                self._ssl = ssl.create_default_context()
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self.timeout = timeout
        headers = f"Host: {url.netloc}\r\nUser-Agent: bosun-hollow/0.1\r\nAccept: application/json\r\n"
        if config.token:
            headers += f"Authorization: Bearer {config.token}\r\n"
        self._headers = headers.encode()
        self._idle: list[_Conn] = []
        self._busy: set[_Conn] = set()
        self._slots = asyncio.Semaphore(max(1, connections))
        self._watchdog: asyncio.Task[None] | None = None
        self.requests = 0

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self._ssl, server_hostname=self.host if self._ssl else None)
        return _Conn(reader, writer)

    async def request(self, method: str, path: str, body: bytes | None = None,
                      content_type: bytes = b"application/json") -> tuple[int, bytes]:
        """One request; the status and body of the answer (any status, nothing raised for it)."""
        head = b"%s %s HTTP/1.1\r\n%s" % (method.encode(), path.encode(), self._headers)
        if body is not None:
            head += b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body))
        request = head + b"\r\n" + (body or b"")
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_timeouts(), name="lean-http")
        async with self._slots:
            self.requests += 1
            for attempt in (0, 1):
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await asyncio.wait_for(self._connect(), self.timeout)
                conn.since = asyncio.get_running_loop().time()
                self._busy.add(conn)
                try:
                    status, data, keep = await conn.roundtrip(request)
                except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
                    conn.close()
                    if conn.timed_out:
                        raise TimeoutError(f"{method} {path}: no answer within {self.timeout:g}s") from exc
                    # A kept-alive connection the server closed meanwhile: once more, afresh.
                    if reused and attempt == 0 and not (isinstance(exc, asyncio.IncompleteReadError)
                                                        and exc.partial):
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                finally:
                    self._busy.discard(conn)
                    conn.since = 0.0
                if keep:
                    self._idle.append(conn)
                else:
                    conn.close()
                return status, data
        raise AssertionError("unreachable")

    async def _watch_timeouts(self) -> None:
        """Abort requests older than the timeout: one timer for all of them, where a timeout
        per request (asyncio.timeout) was a tenth of this client's CPU."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            late = loop.time() - self.timeout
            for conn in [c for c in self._busy if 0.0 < c.since < late]:
                conn.abort()

    async def patch(self, path: str, patch: object, patch_type: str = "merge") -> None:
        """PATCH ``path``; ApiError (with the server's Status) when refused."""
        status, data = await self.request("PATCH", path, orjson.dumps(patch), JSON_PATCH[patch_type])
        if status >= 400:
            raise _error(status, data)

    async def post(self, path: str, obj: object) -> None:
        status, data = await self.request("POST", path, orjson.dumps(obj))
        if status >= 400:
            raise _error(status, data)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None


def _error(status: int, data: bytes) -> ApiError:
    try:
        body = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        body = None
    text = data.decode("utf-8", "replace").strip() if body is None else ""
    return ApiError.from_status(status, body if isinstance(body, dict) else None, text)
