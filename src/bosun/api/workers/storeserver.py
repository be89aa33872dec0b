"""The store owner's end of a worker's channel: the owner's Store, served request by request.

Every request runs as its own task, so a worker's many concurrent requests reach the store
together (SQLite's writer then commits them as one batch, as it does for requests of the owner
itself). A watch streams its events in revision order until the worker cancels it.

The event of a write the worker is still waiting for carries, instead of the value, that
write's request id (the store hands its watchers the very bytes object it was given, so this
is known for sure): the worker takes the value it sent, which spares the channel a copy of
each of its writes and lets its watch cache recognise its own objects (they need no decoding).
Such an event always leaves before the write's reply: the reply waits one turn of the loop,
in which the watches the write woke send their events.

Besides the Store's operations, the owner serves ``extra`` ones that are not the store's but
must be answered in one place, e.g. ``monitoring`` (the one metrics history:
:mod:`bosun.monitoring.serving`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.workers.wire import END, ERROR, EVENT, OK, Outbox, encode_error, kv_tuple, read_frame
from bosun.store.base import Store

log = logging.getLogger(__name__)


async def _get(store: Store, key: str) -> Any:
    kv = await store.get(key)
    return None if kv is None else kv_tuple(kv)


async def _list(store: Store, prefix: str, start_key: str, limit: int) -> Any:
    kvs, rev = await store.list(prefix, start_key=start_key, limit=limit)
    return [kv_tuple(kv) for kv in kvs], rev


async def _delete(store: Store, key: str, expected: int) -> Any:
    return kv_tuple(await store.delete(key, expected))


# The operations that write a value (their arguments start with key, value).
_WRITES = frozenset({"create", "update"})
_NONE = (0, b"")

# op -> how to answer it; the arguments come positionally from the worker (remotestore.py).
OPS: dict[str, Callable[..., Awaitable[Any]]] = {
    "get": _get,
    "list": _list,
    "count": lambda store, prefix: store.count(prefix),
    "create": lambda store, key, value: store.create(key, value),
    "update": lambda store, key, value, expected: store.update(key, value, expected),
    "delete": _delete,
    "current_revision": lambda store: store.current_revision(),
    "compacted_revision": lambda store: store.compacted_revision(),
    "compact": lambda store, revision: store.compact(revision),
    "ping": lambda store: store.ping(),
}


class StoreServer:
    """Serves ``store`` to one worker over ``reader``/``writer`` until the worker is gone."""

    def __init__(self, store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 extra: Mapping[str, Callable[..., Awaitable[Any]]] | None = None) -> None:
        self.store = store
        self._ops: dict[str, Callable[..., Awaitable[Any]]] = {
            **{op: functools.partial(fn, store) for op, fn in OPS.items()}, **(extra or {})}
        self.reader = reader
        self.writer = writer
        self._out = Outbox(writer)
        self._calls: set[asyncio.Task[None]] = set()
        self._watches: dict[int, asyncio.Task[None]] = {}
        # key -> (request id, value) of the creates and updates being written for the worker.
        self._writing: dict[str, tuple[int, bytes]] = {}

    async def serve(self) -> None:
        try:
            while True:
                rid, op, args = await read_frame(self.reader)
                if op == "watch":
                    self._watches[rid] = asyncio.create_task(self._watch(rid, *args), name=f"worker-watch-{rid}")
                elif op == "cancel":
                    await cancel_and_wait(self._watches.pop(args[0], None))
                else:
                    task = asyncio.create_task(self._call(rid, op, args))
                    self._calls.add(task)
                    task.add_done_callback(self._calls.discard)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # The worker is gone: its calls and watches end here; the pool restarts it and says so.
            log.debug("store channel closed by its worker: %r", exc)
        finally:
            for task in [*self._calls, *self._watches.values()]:
                await cancel_and_wait(task)
            self._watches.clear()
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    def _send(self, message: Any) -> None:
        self._out.put(message)

    async def _call(self, rid: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            handler = self._ops[op]
        except KeyError:
            self._send((rid, ERROR, ("unavailable", (f"unknown store operation {op!r}",))))
            return
        key = args[0] if op in _WRITES else None
        if key is not None:
            self._writing[key] = (rid, args[1])
        try:
            result = await handler(*args)
            if key is not None:
                # The store resumes its writers before its watchers: one turn of the loop
                # lets this worker's watches send the write's event first (with its id).
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure goes back to the caller, never lost here
            self._send((rid, ERROR, encode_error(exc)))
            return
        finally:
            if key is not None and self._writing.get(key, _NONE)[0] == rid:
                del self._writing[key]
        self._send((rid, OK, result))

    async def _watch(self, rid: int, prefix: str, from_revision: int) -> None:
        try:
            async for ev in self.store.watch(prefix, from_revision):
                mine = self._writing.get(ev.key)
                if mine is not None and mine[1] is ev.value:  # the worker has the value
                    self._send((rid, EVENT, (ev.type, ev.key, None, ev.revision, ev.prev_value, mine[0])))
                else:
                    self._send((rid, EVENT, (ev.type, ev.key, ev.value, ev.revision, ev.prev_value, 0)))
                await self.writer.drain()  # a worker that cannot keep up slows its own stream only
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._send((rid, ERROR, encode_error(exc)))
            return
        self._send((rid, END, None))
