"""SQLite-only behaviour: the file is the state, so it must survive a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from bosun.store import open_store
from bosun.store.base import CompactedError, UnavailableError
from bosun.store.sqlite import SQLiteStore


async def test_data_and_revisions_survive_reopen(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    try:
        r1 = await store.create("/registry/pods/ns/a", b"a")
        r2 = await store.update("/registry/pods/ns/a", b"a2", r1)
        await store.compact(r1)
    finally:
        await store.close()

    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    try:
        assert await store.current_revision() == r2
        assert await store.compacted_revision() == r1
        kv = await store.get("/registry/pods/ns/a")
        assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision) == (b"a2", r2, r1)
        assert await store.create("/registry/pods/ns/b", b"b") == r2 + 1
        watch = store.watch("/registry/pods/", r1)  # history from before the restart
        events = [await anext(watch), await anext(watch)]
        await watch.aclose()
        assert [(e.type, e.revision, e.prev_value) for e in events] == [
            ("MODIFIED", r2, b"a"),
            ("ADDED", r2 + 1, None),
        ]
        with pytest.raises(CompactedError):
            await anext(store.watch("/registry/pods/", r1 - 1))
    finally:
        await store.close()


async def test_open_store_urls(tmp_path: Path) -> None:
    store = await open_store("", tmp_path)
    await store.close()
    assert (tmp_path / "state.db").exists()
    store = await open_store(f"sqlite://{tmp_path}/other.db", tmp_path)
    await store.close()
    assert (tmp_path / "other.db").exists()
    for bad in ["mysql://x", "sqlite://relative.db", "etcd://", "etcd://host", "etcd://h:99999"]:
        with pytest.raises(ValueError):
            await open_store(bad, tmp_path)


async def test_second_open_of_the_same_file_is_refused(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    try:
        with pytest.raises(UnavailableError):
            await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
        await store.create("/registry/x", b"still works")
    finally:
        await store.close()
    again = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    await again.close()
