"""Store fixtures: every contract test runs once per backend (SQLite file, real etcd), and on
the store an API worker process sees (bosun.api.workers: an SQLite store reached over its
store channel), which must keep the same contract."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

# pytest puts tests/store (not the repository root) on sys.path for this conftest; the shared
# fixtures live in tests/fixtures, so make the root importable until a root conftest declares
# pytest_plugins = ["tests.fixtures.etcd"].
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bosun.aio import cancel_and_wait  # noqa: E402
from bosun.api.workers.remotestore import RemoteStore  # noqa: E402
from bosun.api.workers.storeserver import StoreServer  # noqa: E402
from bosun.store.base import Store  # noqa: E402

if "tests.fixtures.etcd" not in sys.modules:  # not already loaded as a plugin by a root conftest
    from tests.fixtures.etcd import etcd_endpoint  # noqa: F401

StoreFactory = Callable[..., Awaitable[Store]]


class _ChannelStore(RemoteStore):
    """A RemoteStore whose owner store is served in this process; closing it closes both, so a
    test can close and reopen the file as with the other backends."""

    owner: Store
    serving: asyncio.Task[None]

    async def close(self) -> None:
        await super().close()
        await cancel_and_wait(self.serving)
        await self.owner.close()


async def _over_channel(owner: Store) -> Store:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    remote_reader, remote_writer = await asyncio.open_unix_connection(sock=theirs)
    remote = _ChannelStore(remote_reader, remote_writer)
    remote.owner = owner
    remote.serving = asyncio.create_task(StoreServer(owner, reader, writer).serve())
    return remote


@pytest.fixture(params=["sqlite", "etcd", "sqlite-worker"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores of the parametrized backend that share one place (file or key prefix), so
    a test can close and reopen; closes whatever is still open at the end."""
    opened: list[Store] = []
    factory: StoreFactory
    if request.param == "sqlite":
        from bosun.store.sqlite import SQLiteStore

        async def factory(**kwargs: Any) -> Store:
            kwargs.setdefault("compact_interval", 0)
            store = await SQLiteStore.open(tmp_path / "state.db", **kwargs)
            opened.append(store)
            return store

    elif request.param == "sqlite-worker":
        from bosun.store.sqlite import SQLiteStore

        async def factory(**kwargs: Any) -> Store:
            kwargs.setdefault("compact_interval", 0)
            store = await _over_channel(await SQLiteStore.open(tmp_path / "state.db", **kwargs))
            opened.append(store)
            return store

    else:
        from bosun.store.etcd import EtcdStore

        endpoint = request.getfixturevalue("etcd_endpoint")
        prefix = f"/test-{uuid.uuid4().hex[:12]}"

        async def factory(**kwargs: Any) -> Store:
            kwargs.setdefault("compact_interval", 0)
            store = await EtcdStore.open([endpoint], prefix=prefix, **kwargs)
            opened.append(store)
            return store

    factory.backend = request.param.removesuffix("-worker")  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
async def store(open_store: StoreFactory) -> Store:
    """A fresh store of the parametrized backend."""
    return await open_store()
