"""How a :class:`~bosun.client.rest.Client` reaches the API server.

The client speaks in requests and answers (method, path, query, body, headers ->
status, headers, body); a transport carries them. Over the network that is HTTPS
(:class:`HttpTransport`); a component running inside the API server's own process can
hand them to the server's in-process dispatcher instead (:class:`LocalTransport`), which
runs the very same middlewares and handlers (authentication, validation, admission,
metrics) but skips TLS, sockets and HTTP parsing, the main-thread cost of a request that
never leaves the process.
"""

from __future__ import annotations

import abc
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, cast

import aiohttp


class Stream(Protocol):
    """An answer whose body arrives over time (watch, ``logs -f``)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes:
        """The whole body (used for error answers)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; ends when the server ends the answer."""
        ...


class Carrier(Protocol):
    """What carries a client's requests: a transport, or the API server's in-process dispatcher."""

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request; any status is returned, not raised (the client turns >= 400 into ApiError)."""
        ...

    def stream(
        self,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        read_timeout: float | None,
    ) -> AbstractAsyncContextManager[Stream]:
        """A long-running GET; leaving the context ends it, as closing the connection would."""
        ...


class Transport(Carrier, Protocol):
    async def close(self) -> None: ...


class Forwarding(abc.ABC):
    """A transport that hands every request, unchanged, to another carrier: what it adds is
    the choice of that carrier (:meth:`target`)."""

    @abc.abstractmethod
    def target(self) -> Carrier: ...

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes]:
        return await self.target().request(method, path, params, body, headers)

    def stream(
        self,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        read_timeout: float | None,
    ) -> AbstractAsyncContextManager[Stream]:
        return self.target().stream(path, params, headers, read_timeout)


class _HttpStream:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    @property
    def status(self) -> int:
        return self._resp.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._resp.headers

    async def read(self) -> bytes:
        return await self._resp.read()

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._resp.content.iter_any():
            yield chunk


class HttpTransport:
    """HTTP(S) over one pooled aiohttp session; ``timeout`` bounds a whole unary request
    and the connection set-up of a stream."""

    def __init__(self, server: str, ssl_context: ssl.SSLContext | bool, timeout: float = 30) -> None:
        self.server = server
        self.timeout = timeout
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session belongs to the loop that first uses it.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=100, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes]:
        async with self._get_session().request(
            method, self.server + path, params=params, data=body, headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as resp:
            return resp.status, resp.headers, await resp.read()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        read_timeout: float | None,
    ) -> AsyncIterator[Stream]:
        async with self._get_session().get(
            self.server + path, params=params, headers=headers,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self.timeout, sock_connect=self.timeout, sock_read=read_timeout,
            ),
        ) as resp:
            yield _HttpStream(resp)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class Dispatcher(Carrier, Protocol):
    """The API server's in-process entry point (:class:`bosun.api.local.LocalDispatcher`)."""

    def stream(
        self, path: str, params: Mapping[str, str], headers: Mapping[str, str], read_timeout: float | None,
        *, events: bool = False,
    ) -> AbstractAsyncContextManager[Stream]: ...


class EventStream(Stream, Protocol):
    """A local watch whose events arrive as objects shared with the server (read-only)."""

    def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...


class LocalTransport(Forwarding):
    """Requests handed straight to an API server in this process and event loop.

    There is no client-side timeout on unary requests: nothing can be lost on the way, and
    cancelling a handler half way through a write would do what a dropped connection never
    does (aiohttp lets the handler finish). Streams keep their read timeout.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def target(self) -> Carrier:
        return self.dispatcher

    def event_stream(
        self,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        read_timeout: float | None,
    ) -> AbstractAsyncContextManager[EventStream]:
        """A watch whose events come as the server's own decoded objects: no JSON either way.
        The objects are shared with the API server's cache and must never be modified."""
        return cast(AbstractAsyncContextManager[EventStream],
                    self.dispatcher.stream(path, params, headers, read_timeout, events=True))

    async def close(self) -> None:
        """Nothing to release: the server owns the dispatcher."""
