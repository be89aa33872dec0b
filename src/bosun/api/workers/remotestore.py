"""A worker's Store: every call is a request to the store owner (storeserver.py).

It keeps the Store contract exactly because it adds nothing of its own: revisions, CAS
conflicts, compaction errors and watch order are the owner store's. When the owner is gone,
every pending call fails with UnavailableError (the API answers 503) and ``lost`` is set, on
which the worker process exits."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from bosun.api.workers.wire import END, ERROR, EVENT, OK, Outbox, decode_error, read_frame
from bosun.store.base import KeyValue, UnavailableError, WatchEvent

_GONE = "the store owner process is gone"


class RemoteStore:
    """:class:`~bosun.store.base.Store` over a channel to the owner process."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._out = Outbox(writer)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._watches: dict[int, asyncio.Queue[tuple[int, Any]]] = {}
        # request id -> value of the creates and updates not answered yet: their events come
        # without it (storeserver.py), and carry this very object on to the watch cache.
        self._sent: dict[int, bytes] = {}
        self.lost = asyncio.Event()
        self._task = asyncio.create_task(self._read_loop(), name="remote-store")

    async def _read_loop(self) -> None:
        try:
            while True:
                rid, kind, payload = await read_frame(self._reader)
                if kind == OK or (kind == ERROR and rid in self._pending):
                    fut = self._pending.pop(rid, None)
                    if fut is not None and not fut.done():
                        if kind == OK:
                            fut.set_result(payload)
                        else:
                            fut.set_exception(decode_error(payload))
                    continue
                queue = self._watches.get(rid)
                if queue is None:
                    continue
                if kind == EVENT:
                    typ, key, value, revision, prev, write = payload
                    if value is None:
                        value = self._sent.get(write)
                        if value is None:  # never: the event leaves before its write's reply
                            queue.put_nowait((ERROR, ("unavailable", (f"no value for the event of {key}",))))
                            continue
                    queue.put_nowait((EVENT, WatchEvent(typ, key, value, revision, prev)))
                else:
                    queue.put_nowait((kind, payload))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._lose()

    def _lose(self) -> None:
        self.lost.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(UnavailableError(_GONE))
        self._pending.clear()
        for queue in self._watches.values():
            queue.put_nowait((ERROR, ("unavailable", (_GONE,))))

    async def call(self, op: str, *args: Any) -> Any:
        """Ask the owner ``op``: a Store operation, or one of its extra ones (storeserver.py)."""
        if self.lost.is_set():
            raise UnavailableError(_GONE)
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._out.put((rid, op, args))
        return await fut

    async def _write(self, op: str, key: str, value: bytes, *args: Any) -> int:
        """``call`` for a create or update: ``value`` stays here until the reply, for its event."""
        if self.lost.is_set():
            raise UnavailableError(_GONE)
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._sent[rid] = value
        self._out.put((rid, op, (key, value, *args)))
        try:
            rev: int = await fut
        finally:
            del self._sent[rid]
        return rev

    async def get(self, key: str) -> KeyValue | None:
        row = await self.call("get", key)
        return None if row is None else KeyValue(*row)

    async def list(self, prefix: str, *, start_key: str = "", limit: int = 0) -> tuple[list[KeyValue], int]:
        rows, rev = await self.call("list", prefix, start_key, limit)
        return [KeyValue(*row) for row in rows], rev

    async def count(self, prefix: str) -> int:
        n: int = await self.call("count", prefix)
        return n

    async def create(self, key: str, value: bytes) -> int:
        return await self._write("create", key, bytes(value))

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        return await self._write("update", key, bytes(value), expected_revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return KeyValue(*await self.call("delete", key, expected_revision))

    async def current_revision(self) -> int:
        rev: int = await self.call("current_revision")
        return rev

    async def compacted_revision(self) -> int:
        rev: int = await self.call("compacted_revision")
        return rev

    async def compact(self, revision: int) -> None:
        await self.call("compact", revision)

    async def ping(self) -> None:
        await self.call("ping")

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchEvent]:
        if self.lost.is_set():
            raise UnavailableError(_GONE)
        rid = next(self._ids)
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self._watches[rid] = queue
        self._out.put((rid, "watch", (prefix, from_revision)))
        try:
            while True:
                kind, payload = await queue.get()
                if kind == EVENT:
                    yield payload
                elif kind == ERROR:
                    raise decode_error(payload)
                elif kind == END:
                    return
        finally:
            self._watches.pop(rid, None)
            if not self.lost.is_set() and not self._writer.is_closing():
                self._out.put((rid, "cancel", (rid,)))

    async def close(self) -> None:
        for queue in self._watches.values():  # closing ends open watches, as every store's close does
            queue.put_nowait((END, None))
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
