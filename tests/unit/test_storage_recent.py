"""Storage.mutate may start from the object this server wrote last; a write made behind its
back (another API server on the same etcd, or a direct store write) must still win: no lost
update, no false conflict, no false no-op."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bosun.api.errors import APIError
from bosun.api.nstracker import NamespaceTracker
from bosun.api.registry import by_plural, must_by_plural
from bosun.api.storage import Storage
from bosun.store.sqlite import SQLiteStore

PODS = by_plural("", "v1", "pods")
assert PODS is not None
KEY = "/registry/pods/default/p"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await SQLiteStore.open(tmp_path / "s.db", compact_interval=0)
    ns = NamespaceTracker()
    ns.phase["default"] = "Active"
    try:
        storage = Storage(store, ns)
        # Pods are admitted only with their ServiceAccount (the controller's job in a server).
        await storage.create(must_by_plural("", "v1", "serviceaccounts"), "default",
                             {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
        yield storage
    finally:
        await store.close()


async def _created(storage: Storage) -> dict[str, Any]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"v": "1"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    return await storage.create(PODS, "default", pod)  # type: ignore[arg-type]


async def _write_behind_the_back(storage: Storage, change: dict[str, Any]) -> int:
    kv = await storage.store.get(KEY)
    assert kv is not None
    obj = orjson.loads(kv.value)
    obj.update(change)
    return await storage.store.update(KEY, orjson.dumps(obj), kv.mod_revision)


def _set_label(value: str) -> Any:
    def fn(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["labels"] = {"v": value}
        return obj
    return fn


async def test_an_update_made_elsewhere_is_not_lost(storage: Storage) -> None:
    await _created(storage)
    await _write_behind_the_back(storage, {"status": {"phase": "Running"}})
    out = await storage.mutate(PODS, "default", "p", _set_label("2"))  # type: ignore[arg-type]
    assert out["status"]["phase"] == "Running" and out["metadata"]["labels"] == {"v": "2"}
    got = await storage.get(PODS, "default", "p")  # type: ignore[arg-type]
    assert got["status"]["phase"] == "Running" and got["metadata"]["labels"] == {"v": "2"}


async def test_a_precondition_on_the_newest_version_is_no_conflict(storage: Storage) -> None:
    await _created(storage)
    rev = await _write_behind_the_back(storage, {"status": {"phase": "Running"}})

    def fn(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(rev)
        obj["metadata"]["labels"] = {"v": "3"}
        return obj

    out = await storage.mutate(PODS, "default", "p", fn)  # type: ignore[arg-type]
    assert out["metadata"]["labels"] == {"v": "3"}
    assert int(out["metadata"]["resourceVersion"]) > rev


async def test_a_change_back_to_the_old_value_is_written(storage: Storage) -> None:
    await _created(storage)
    rev = await _write_behind_the_back(storage, {"metadata": {"name": "p", "namespace": "default",
                                                              "labels": {"v": "other"}}})
    # Against the remembered object this would be a no-op; against the store it is not.
    out = await storage.mutate(PODS, "default", "p", _set_label("1"))  # type: ignore[arg-type]
    assert out["metadata"]["labels"] == {"v": "1"} and int(out["metadata"]["resourceVersion"]) > rev


async def test_errors_are_those_of_the_stored_object(storage: Storage) -> None:
    await _created(storage)
    await storage.store.delete(KEY)
    with pytest.raises(APIError) as exc:
        await storage.mutate(PODS, "default", "p", _set_label("2"))  # type: ignore[arg-type]
    assert exc.value.code == 404


# A PUT carrying the resourceVersion of the object this server wrote last starts from that
# object; what it answers must be what a store read would have made it answer.

async def _put(storage: Storage, obj: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    sent = orjson.loads(orjson.dumps(obj))
    sent["metadata"]["labels"] = labels
    return await storage.update(PODS, "default", "p", sent)  # type: ignore[arg-type]


async def test_a_put_from_the_last_write_is_stored_and_read_back(storage: Storage) -> None:
    created = await _created(storage)
    out = await _put(storage, created, {"v": "2"})
    assert int(out["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    got = await storage.get(PODS, "default", "p")  # type: ignore[arg-type]
    assert got == out


async def test_a_put_of_a_version_written_over_behind_the_back_is_a_conflict(storage: Storage) -> None:
    created = await _created(storage)
    await _write_behind_the_back(storage, {"status": {"phase": "Running"}})
    with pytest.raises(APIError) as exc:
        await _put(storage, created, {"v": "2"})
    assert exc.value.code == 409


async def test_a_noop_put_of_a_version_written_over_behind_the_back_is_a_conflict(storage: Storage) -> None:
    created = await _created(storage)
    await _write_behind_the_back(storage, {"status": {"phase": "Running"}})
    with pytest.raises(APIError) as exc:
        await _put(storage, created, {"v": "1"})  # no change against the remembered object
    assert exc.value.code == 409


async def test_an_invalid_put_of_a_version_written_over_behind_the_back_is_a_conflict(storage: Storage) -> None:
    created = await _created(storage)
    await _write_behind_the_back(storage, {"status": {"phase": "Running"}})
    with pytest.raises(APIError) as exc:
        await _put(storage, created, {"v": "not a valid label value!"})
    assert exc.value.code == 409


async def test_an_invalid_put_of_the_current_version_is_refused_as_invalid(storage: Storage) -> None:
    created = await _created(storage)
    with pytest.raises(APIError) as exc:
        await _put(storage, created, {"v": "not a valid label value!"})
    assert exc.value.code == 422


async def test_a_noop_put_of_the_current_version_keeps_it(storage: Storage) -> None:
    created = await _created(storage)
    out = await _put(storage, created, {"v": "1"})
    assert out["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_a_put_of_an_object_deleted_behind_the_back_is_not_found(storage: Storage) -> None:
    created = await _created(storage)
    await storage.store.delete(KEY)
    with pytest.raises(APIError) as exc:
        await _put(storage, created, {"v": "2"})
    assert exc.value.code == 404


async def test_a_read_shares_the_last_write_only_while_the_store_holds_it(storage: Storage) -> None:
    created = await _created(storage)
    got = await storage.get_shared(PODS, "default", "p")  # type: ignore[arg-type]
    assert got is created  # what was written, not a decode of it
    assert got == await storage.get(PODS, "default", "p")  # type: ignore[arg-type]
    rev = await _write_behind_the_back(storage, {"status": {"phase": "Running"}})
    got = await storage.get_shared(PODS, "default", "p")  # type: ignore[arg-type]
    assert got["status"] == {"phase": "Running"} and got["metadata"]["resourceVersion"] == str(rev)
    assert created.get("status", {}).get("phase") != "Running"
    await storage.store.delete(KEY)
    with pytest.raises(APIError) as exc:
        await storage.get_shared(PODS, "default", "p")  # type: ignore[arg-type]
    assert exc.value.code == 404
