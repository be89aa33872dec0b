"""Informer: list + watch into a cache against the real API server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tests.integration.helpers import ROOT_CA, made_by_test, named, namespace_furnished, temporary_namespace

from bosun.client import ApiError, Client, Informer

CM = named("configmaps")
NS = named("namespaces")


@pytest.fixture
async def namespace(client: Client) -> AsyncIterator[str]:
    async with temporary_namespace(client, "inf") as name:
        yield name


@pytest.fixture
async def informers() -> AsyncIterator[list[Informer]]:
    """Informers a test starts; stopped even when the test fails."""
    started: list[Informer] = []
    try:
        yield started
    finally:
        for inf in started:
            await inf.stop()


def cm(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "data": {}}


class Recorder:
    """Handler triple that records what an informer told it, as (verb, name[, detail])."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []
        self.changed = asyncio.Event()

    def _note(self, *entry: str) -> None:
        if entry[1] == ROOT_CA:  # every namespace's own ConfigMap, not the test's
            return
        self.seen.append(entry)
        self.changed.set()

    def on_add(self, obj: dict[str, Any]) -> None:
        self._note("add", obj["metadata"]["name"])

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._note("update", new["metadata"]["name"], (new.get("data") or {}).get("v", ""))

    def on_delete(self, obj: dict[str, Any]) -> None:
        self._note("delete", obj["metadata"]["name"])

    async def wait_for(self, pred: Callable[[list[tuple[str, ...]]], bool], within: float = 5) -> None:
        async def loop() -> None:
            while not pred(self.seen):
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), within)


async def start(informers: list[Informer], inf: Informer, rec: Recorder | None = None) -> Informer:
    if rec is not None:
        inf.add_handler(rec.on_add, rec.on_update, rec.on_delete)
    informers.append(inf)
    await inf.start()
    await inf.wait_synced(10)
    return inf


async def test_cache_syncs_with_existing_objects_and_indexes(
    client: Client, namespace: str, informers: list[Informer],
) -> None:
    for i in range(5):
        await client.create(CM, cm(f"c{i}", namespace, tier="a" if i % 2 else "b"))
    inf = Informer(client, CM, namespace, page_size=2)
    inf.add_index("tier", lambda o: [o["metadata"].get("labels", {}).get("tier", "")])
    rec = Recorder()
    await start(informers, inf, rec)

    assert inf.has_synced
    assert inf.last_resource_version
    assert sorted(o["metadata"]["name"] for o in made_by_test(inf.list())) == [f"c{i}" for i in range(5)]
    assert inf.get(namespace, "c3") is not None
    assert inf.get(namespace, "missing") is None
    assert sorted(o["metadata"]["name"] for o in inf.by_index("tier", "a")) == ["c1", "c3"]
    assert sorted(rec.seen) == [("add", f"c{i}") for i in range(5)]

    late = Recorder()
    inf.add_handler(late.on_add)
    assert len(late.seen) == 5, "a handler added after sync is told about every cached object"


async def test_handlers_see_every_change_in_order_and_indexes_follow(
    client: Client, namespace: str, informers: list[Informer],
) -> None:
    inf = Informer(client, CM, namespace)
    inf.add_index("tier", lambda o: [o["metadata"].get("labels", {}).get("tier", "")])
    rec = Recorder()
    await start(informers, inf, rec)

    await client.create(CM, cm("x", namespace, tier="a"))
    await client.patch(CM, "x", {"data": {"v": "1"}, "metadata": {"labels": {"tier": "b"}}}, namespace)
    await client.delete(CM, "x", namespace)
    await rec.wait_for(lambda s: len(s) >= 3)
    assert rec.seen == [("add", "x"), ("update", "x", "1"), ("delete", "x")]
    assert inf.get(namespace, "x") is None
    assert inf.by_index("tier", "a") == [] and inf.by_index("tier", "b") == []


async def test_namespaced_informer_ignores_other_namespaces(
    client: Client, namespace: str, informers: list[Informer],
) -> None:
    other = f"inf-{uuid.uuid4().hex[:8]}"
    await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    await namespace_furnished(client, other)
    try:
        rec = Recorder()
        inf = await start(informers, Informer(client, CM, namespace), rec)
        await client.create(CM, cm("elsewhere", other))
        await client.create(CM, cm("here", namespace))
        await rec.wait_for(lambda s: ("add", "here") in s)
        assert rec.seen == [("add", "here")]
        assert [o["metadata"]["name"] for o in made_by_test(inf.list())] == ["here"]
    finally:
        await client.delete(NS, other)


async def test_label_selector_informer(client: Client, namespace: str, informers: list[Informer]) -> None:
    await client.create(CM, cm("yes", namespace, pick="1"))
    await client.create(CM, cm("no", namespace, pick="0"))
    inf = await start(informers, Informer(client, CM, namespace, label_selector="pick=1"))
    assert [o["metadata"]["name"] for o in made_by_test(inf.list())] == ["yes"]


async def test_a_failing_handler_does_not_stop_the_informer(
    client: Client, namespace: str, informers: list[Informer],
) -> None:
    def explode(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    inf = Informer(client, CM, namespace)
    inf.add_handler(on_add=explode)
    rec = Recorder()
    await start(informers, inf, rec)
    await client.create(CM, cm("a", namespace))
    await client.create(CM, cm("b", namespace))
    await rec.wait_for(lambda s: len(s) >= 2)
    assert rec.seen == [("add", "a"), ("add", "b")]


async def test_resumes_after_the_server_ends_the_watch_without_losing_or_repeating_events(
    client: Client, namespace: str, informers: list[Informer],
) -> None:
    rec = Recorder()
    # The server closes every watch after one second; changes keep flowing across reconnects.
    inf = await start(informers, Informer(client, CM, namespace, watch_timeout=(1, 1)), rec)
    for i in range(12):
        await client.create(CM, cm(f"r{i}", namespace))
        await asyncio.sleep(0.25)
    await rec.wait_for(lambda s: len(s) >= 12)
    await asyncio.sleep(0.3)
    assert rec.seen == [("add", f"r{i}") for i in range(12)]
    assert inf.lists == 1, "a closed watch resumes from the last resourceVersion, no relist"


async def test_resync_replays_the_cache_as_updates(
    client: Client, namespace: str, informers: list[Informer],
) -> None:
    await client.create(CM, cm("steady", namespace))
    rec = Recorder()
    await start(informers, Informer(client, CM, namespace, resync_period=0.2), rec)
    await rec.wait_for(lambda s: sum(1 for e in s if e[0] == "update") >= 2)
    assert rec.seen[0] == ("add", "steady")
    assert set(rec.seen[1:]) == {("update", "steady", "")}


async def test_stop_ends_the_watch(client: Client, namespace: str) -> None:
    rec = Recorder()
    inf = Informer(client, CM, namespace)
    inf.add_handler(rec.on_add)
    await inf.start()
    await inf.wait_synced(10)
    await inf.stop()
    await client.create(CM, cm("after-stop", namespace))
    await asyncio.sleep(0.3)
    assert rec.seen == []


async def test_restart_resumes_the_watch_from_the_cache(
    client: Client, namespace: str, informers: list[Informer],
) -> None:
    """stop() keeps the cache; start() watches on from its resourceVersion: nothing missed, no relist."""
    await client.create(CM, cm("keep", namespace))
    rec = Recorder()
    inf = await start(informers, Informer(client, CM, namespace), rec)
    await inf.stop()
    rec.seen.clear()
    await client.create(CM, cm("while-stopped", namespace))
    await client.patch(CM, "keep", {"data": {"v": "2"}}, namespace)
    await inf.start()
    await rec.wait_for(lambda s: len(s) >= 2)
    await asyncio.sleep(0.2)
    assert rec.seen == [("add", "while-stopped"), ("update", "keep", "2")]
    assert inf.lists == 1


async def change_while_stopped(client: Client, namespace: str, inf: Informer, rec: Recorder) -> None:
    """Stop the informer and change, drop and add objects behind its back."""
    await inf.stop()
    rec.seen.clear()
    await client.patch(CM, "change", {"data": {"v": "2"}}, namespace)
    await client.delete(CM, "drop", namespace)
    await client.create(CM, cm("new", namespace))


async def test_relist_after_410_emits_only_the_difference(
    fresh_server: Any, informers: list[Informer],
) -> None:
    """When its resourceVersion has expired (410 Gone), the informer relists and tells handlers
    exactly what changed meanwhile: adds, updates and deletes."""
    c = Client.from_kubeconfig(fresh_server.kubeconfig)
    try:
        ns = "relist"
        await c.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await namespace_furnished(c, ns)
        for name in ("keep", "change", "drop"):
            await c.create(CM, cm(name, ns))
        rec = Recorder()
        inf = await start(informers, Informer(c, CM, ns), rec)
        assert sorted(rec.seen) == [("add", "change"), ("add", "drop"), ("add", "keep")]
        await change_while_stopped(c, ns, inf, rec)
        # Forget the server's watch history (as after compaction): resuming now answers 410.
        fresh_server.call(fresh_server.api.cache._reset())
        with pytest.raises(ApiError) as gone:
            async for _ in c.watch(CM, ns, resource_version=inf.last_resource_version):
                pass
        assert gone.value.status == 410

        await inf.start()
        await rec.wait_for(lambda s: len(s) >= 3)
        await asyncio.sleep(0.2)
        assert sorted(rec.seen) == [("add", "new"), ("delete", "drop"), ("update", "change", "2")]
        assert sorted(o["metadata"]["name"] for o in made_by_test(inf.list())) == ["change", "keep", "new"]
        assert inf.lists == 2
    finally:
        for inf in informers:
            await inf.stop()
        await c.close()
