"""HTTPS to whichever of several API servers (a swarm's managers) answers.

A node agent of a cluster with several managers must not depend on one of them: when the one
it talks to goes away it carries on with another, with the same credential (managers share
one identity: :mod:`bosun.security.cluster`). This transport keeps one
:class:`~bosun.client.transport.HttpTransport` per server and sends to the current one:

* a connection that cannot be opened (nothing was sent) moves on to the next server and
  tries again at once, until each was tried once;
* any other transport failure (a connection that broke mid-request) moves on too, but is
  raised: the request may have been applied, and the caller (informer, heartbeat, status
  writer) already retries.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping

import aiohttp

from bosun.client.transport import HttpTransport, Stream

# Failures that mean "this server did not get the request": safe to send elsewhere.
NOT_SENT: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError, ConnectionRefusedError)
BROKEN: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)


def parse_servers(text: str) -> list[str]:
    """``https://a:6443,https://b:6443`` -> both URLs, without trailing slashes."""
    return [s.strip().rstrip("/") for s in text.split(",") if s.strip()]


class FailoverTransport:
    def __init__(self, servers: list[str], ssl_context: ssl.SSLContext | bool, timeout: float = 30) -> None:
        if not servers:
            raise ValueError("no API server given")
        self._ssl = ssl_context
        self._timeout = timeout
        self._transports = [HttpTransport(s, ssl_context, timeout) for s in servers]
        self._current = 0

    @property
    def server(self) -> str:
        """The server requests go to now."""
        return self._transports[self._current].server

    @property
    def servers(self) -> list[str]:
        return [t.server for t in self._transports]

    def add_servers(self, servers: list[str]) -> list[str]:
        """Learn of more servers (a manager that joined later) and return those that are new;
        none is forgotten, since one that is away now may be back later and costs only a
        refused connection meanwhile."""
        known = set(self.servers)
        added: list[str] = []
        for url in servers:
            url = url.rstrip("/")
            if url and url not in known:
                self._transports.append(HttpTransport(url, self._ssl, self._timeout))
                known.add(url)
                added.append(url)
        return added

    def _next(self) -> None:
        self._current = (self._current + 1) % len(self._transports)

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes]:
        for tried in range(len(self._transports)):
            try:
                return await self._transports[self._current].request(method, path, params, body, headers)
            except NOT_SENT:
                self._next()
                if tried == len(self._transports) - 1:
                    raise
            except BROKEN:
                self._next()
                raise
        raise AssertionError("unreachable: the loop returns or raises")

    @contextlib.asynccontextmanager
    async def stream(
        self,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        read_timeout: float | None,
    ) -> AsyncIterator[Stream]:
        for tried in range(len(self._transports)):
            opened = self._transports[self._current].stream(path, params, headers, read_timeout)
            try:
                stream = await opened.__aenter__()
            except NOT_SENT:
                self._next()
                if tried == len(self._transports) - 1:
                    raise
                continue
            except BROKEN:
                self._next()
                raise
            try:
                yield stream
            except BROKEN as e:
                self._next()
                await opened.__aexit__(type(e), e, e.__traceback__)
                raise
            except BaseException as e:
                await opened.__aexit__(type(e), e, e.__traceback__)
                raise
            else:
                await opened.__aexit__(None, None, None)
            return

    async def close(self) -> None:
        for t in self._transports:
            await t.close()
