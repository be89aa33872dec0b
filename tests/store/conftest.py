"""Store fixtures: every contract test runs once per backend (SQLite file, real etcd)."""

from __future__ import annotations

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

from bosun.store.base import Store  # noqa: E402

if "tests.fixtures.etcd" not in sys.modules:  # not already loaded as a plugin by a root conftest
    from tests.fixtures.etcd import etcd_endpoint  # noqa: F401

StoreFactory = Callable[..., Awaitable[Store]]


@pytest.fixture(params=["sqlite", "etcd"])
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

    else:
        from bosun.store.etcd import EtcdStore

        endpoint = request.getfixturevalue("etcd_endpoint")
        prefix = f"/test-{uuid.uuid4().hex[:12]}"

        async def factory(**kwargs: Any) -> Store:
            kwargs.setdefault("compact_interval", 0)
            store = await EtcdStore.open([endpoint], prefix=prefix, **kwargs)
            opened.append(store)
            return store

    factory.backend = request.param  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
async def store(open_store: StoreFactory) -> Store:
    """A fresh store of the parametrized backend."""
    return await open_store()
