"""The Docker Engine's event stream, for the docker driver's :class:`ContainerEvents`.

Why a module: the agent relisted the engine every second to notice exits (a list call, and an
inspect of whatever changed); the engine says so itself on ``GET /events``. One thread of
ours reads that stream (the SDK's is blocking) filtered to this driver's containers and to
the events that change a status on their own (``die``, ``oom``, ``destroy``), and hands each
container and pod uid to the loop. While the stream is down (engine restarting) ``changed``
reports every second with an empty set, which makes the agent relist as it used to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests

from bosun.agent.runtime.base import LABEL_POD_UID

log = logging.getLogger(__name__)
EVENTS = ("die", "oom", "destroy")  # a start is the agent's own doing
RECONNECT_S = 1.0
"""Wait before the stream is opened again, and the relist period meanwhile."""


class DockerEvents:
    def __init__(self, client: docker.APIClient, filters: dict[str, Any],
                 on_event: Callable[[str], object]) -> None:
        """``on_event(container id)`` runs on the loop, before ``changed`` returns its pod."""
        self._client = client
        self._filters = {**filters, "type": ["container"], "event": list(EVENTS)}
        self._on_event = on_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._closing = threading.Event()
        self._up = False
        self._changed: set[str] = set()
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._read, name="docker-events", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()  # unblocks the reader

    async def changed(self) -> set[str]:
        """See ContainerEvents: pods whose containers the engine says changed; an empty set
        every :data:`RECONNECT_S` while the stream is down."""
        if not self._changed:
            try:
                async with asyncio.timeout(None if self._up else RECONNECT_S):
                    await self._wake.wait()
            except TimeoutError:
                return set()
        self._wake.clear()
        out, self._changed = self._changed, set()
        return out

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                self._stream = self._client.events(decode=True, filters=self._filters)
                if self._closing.is_set():  # closed while it opened: close() missed it
                    self._stream.close()
                    break
                self._call(self._set_up, True)
                for event in self._stream:
                    self._call(self._got, event)
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
                if not self._closing.is_set():
                    log.warning("docker events stream: %s", e)
            self._call(self._set_up, False)
            self._closing.wait(RECONNECT_S)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fn, *args)

    def _set_up(self, up: bool) -> None:
        self._up = up
        self._wake.set()  # a stream (re)opened may have missed events: relist once

    def _got(self, event: dict[str, Any]) -> None:
        cid = str(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        if cid:
            self._on_event(cid)
        uid = str(attrs.get(LABEL_POD_UID) or "")
        if uid:
            self._changed.add(uid)
        self._wake.set()
