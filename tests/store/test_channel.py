"""The worker's store channel (bosun.api.workers): the event of a worker's own write carries
the value object the worker sent (not a copy: its watch cache then knows the object it wrote
without decoding it), another worker's writes come as values; both are what was written."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bosun.aio import cancel_and_wait
from bosun.api.workers.remotestore import RemoteStore
from bosun.api.workers.storeserver import StoreServer
from bosun.store.base import WatchEvent
from bosun.store.sqlite import SQLiteStore

PODS = "/registry/pods/"


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[tuple[RemoteStore, RemoteStore]]:
    """Two workers' stores on one owner's SQLite store, as the pool serves them."""
    owner = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    remotes: list[RemoteStore] = []
    serving: list[asyncio.Task[None]] = []
    try:
        for _ in range(2):
            ours, theirs = socket.socketpair()
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            serving.append(asyncio.create_task(StoreServer(owner, reader, writer).serve()))
            remotes.append(RemoteStore(*await asyncio.open_unix_connection(sock=theirs)))
        yield remotes[0], remotes[1]
    finally:
        for remote in remotes:
            await remote.close()
        for task in serving:
            await cancel_and_wait(task)
        await owner.close()


async def _events(store: RemoteStore, after: int, n: int) -> list[WatchEvent]:
    it = store.watch(PODS, after)
    try:
        return [await asyncio.wait_for(anext(it), 10) for _ in range(n)]
    finally:
        await it.aclose()  # type: ignore[attr-defined]


async def test_events_of_own_writes_carry_the_sent_values(workers: tuple[RemoteStore, RemoteStore]) -> None:
    mine, other = workers
    values = {f"{PODS}default/p{i}": f'{{"n":{i}}}'.encode() for i in range(40)}
    theirs = {f"{PODS}default/q{i}": f'{{"q":{i}}}'.encode() for i in range(10)}
    watching = asyncio.create_task(_events(mine, await mine.current_revision(), len(values) + len(theirs)))
    await asyncio.sleep(0.2)  # the watch is open before the writes
    await asyncio.gather(*(mine.create(k, v) for k, v in values.items()),
                         *(other.create(k, v) for k, v in theirs.items()))
    events = await watching
    assert {ev.key: ev.value for ev in events} == {**values, **theirs}
    assert [ev.revision for ev in events] == sorted(ev.revision for ev in events)
    assert not any(ev.value is theirs[ev.key] for ev in events if ev.key in theirs)
    # Each event leaves before its write's reply, while the worker still holds the value.
    assert all(ev.value is values[ev.key] for ev in events if ev.key in values)


async def test_a_failed_write_never_lends_its_value(workers: tuple[RemoteStore, RemoteStore]) -> None:
    """A create refused (the key exists) with the very bytes another worker wrote: the event
    is the other worker's, with its value, never this write's object."""
    mine, other = workers
    key = f"{PODS}default/same"
    value = b'{"same":1}'
    start = await mine.current_revision()
    results = await asyncio.gather(other.create(key, bytes(bytearray(value))), mine.create(key, value),
                                   return_exceptions=True)
    assert sum(isinstance(r, int) for r in results) == 1
    (ev,) = await _events(mine, start, 1)
    assert ev.value == value
    assert (ev.value is value) == isinstance(results[1], int)
