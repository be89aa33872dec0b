"""What subresources, watches and streams need of the REST handler, as a Protocol.

:class:`bosun.api.rest.RestHandler` provides it; :mod:`~bosun.api.subresources`,
:mod:`~bosun.api.watch` and :mod:`~bosun.api.exec_proxy` depend on this protocol, not on
``rest``, so the REST handler imports them and nothing imports it back.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from bosun.api.storage import Storage
from bosun.api.target import Target
from bosun.api.watchcache import WatchCache
from bosun.security.satokens import ServiceAccountTokens


class Serving(Protocol):
    storage: Storage
    cache: WatchCache
    # The credential the API server presents to node agents (logs, exec).
    node_token: str
    # Signs ServiceAccount tokens (TokenRequest); None on a server that issues none.
    service_accounts: ServiceAccountTokens | None

    async def get(self, request: web.Request, t: Target) -> web.Response: ...

    async def update(self, request: web.Request, t: Target, sub: str | None = None) -> web.Response: ...

    async def patch(self, request: web.Request, t: Target, sub: str | None = None) -> web.Response: ...

    async def proxy_stream(self, request: web.Request, url: str, params: dict[str, str]) -> web.StreamResponse: ...
