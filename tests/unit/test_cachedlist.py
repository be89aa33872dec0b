"""Lists read from the watch cache over a real SQLite store: what each resourceVersion reads,
snapshots rebuilt from the event ring (Exact, later pages), the indexes, and the 410s once a
revision has left the ring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bosun.api import continuetoken
from bosun.api.cachedlist import ListOptions, Page, list_body, list_page
from bosun.api.errors import APIError
from bosun.api.nstracker import NamespaceTracker
from bosun.api.registry import by_plural
from bosun.api.selectors import parse_field_selector, parse_label_selector
from bosun.api.storage import Storage
from bosun.api.watchcache import WatchCache
from bosun.store.sqlite import SQLiteStore

PODS = by_plural("", "v1", "pods")
CMS = by_plural("", "v1", "configmaps")
assert PODS and CMS


class Env:
    def __init__(self, store: SQLiteStore, cache: WatchCache) -> None:
        self.store = store
        self.cache = cache
        self.storage = Storage(store, NamespaceTracker())

    async def put(self, name: str, ns: str = "ns", node: str = "", **labels: str) -> int:
        """Create or replace a pod straight in the store (no API write: only the watch tells
        the cache), and wait until the cache has it."""
        key = PODS.key(ns, name)
        value = orjson.dumps({"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": name, "namespace": ns, "labels": labels},
                              "spec": {"nodeName": node}})
        kv = await self.store.get(key)
        rev = await (self.store.update(key, value, kv.mod_revision) if kv else self.store.create(key, value))
        await self.cache.wait_for(rev)
        return rev

    async def delete(self, name: str, ns: str = "ns") -> int:
        rev = (await self.store.delete(PODS.key(ns, name))).mod_revision
        await self.cache.wait_for(rev)
        return rev

    async def list(self, ns: str | None = "ns", labels: str = "", fields: str = "", **opts: Any) -> Page:
        return await list_page(self.cache, self.storage, PODS, ns, ListOptions(**opts),
                               parse_label_selector(labels) if labels else None,
                               parse_field_selector(fields) if fields else None)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    cache = WatchCache(store, capacity=40)
    await cache.start()
    try:
        yield Env(store, cache)
    finally:
        await cache.stop()
        await store.close()


def names(page: Page) -> list[str]:
    return [i.obj["metadata"]["name"] for i in page.items]


async def test_objects_written_before_start_are_listed(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "state.db", compact_interval=0)
    try:
        rev = await store.create(PODS.key("ns", "early"), b'{"metadata":{"name":"early","namespace":"ns"}}')
        cache = WatchCache(store)
        await cache.start()
        try:
            page = await list_page(cache, Storage(store, NamespaceTracker()), PODS, "ns", ListOptions())
            assert names(page) == ["early"]
            assert page.items[0].obj["metadata"]["resourceVersion"] == str(rev)
        finally:
            await cache.stop()
    finally:
        await store.close()


async def test_consistent_list_sees_every_write_before_it(env: Env) -> None:
    for i in range(20):
        # Written straight to the store: the list must wait for the cache to see it.
        key = PODS.key("ns", f"p{i}")
        rev = await env.store.create(key, orjson.dumps({"metadata": {"name": f"p{i}", "namespace": "ns"}}))
        page = await env.list()
        assert page.resource_version >= rev
        assert f"p{i}" in names(page)


async def test_writes_outside_the_objects_still_let_a_consistent_read_through(env: Env) -> None:
    """A write the cache does not keep (cluster identity, credentials) moves the store's
    revision all the same; the cache watches it, so a consistent list does not stall."""
    await env.put("a")
    rev = await env.store.create("/bosun/cluster/other", b"x")
    page = await env.list()
    assert page.resource_version == rev and names(page) == ["a"]


async def test_exact_reads_the_past_and_not_older_than_the_present(env: Env) -> None:
    r1 = await env.put("a", app="web")
    await env.put("b", app="web")
    r_before = env.cache.revision
    await env.put("a", app="db")       # relabelled
    await env.delete("b")              # gone
    await env.put("c", app="web")      # new
    then = await env.list(labels="app=web", resource_version=str(r_before), match="Exact")
    assert names(then) == ["a", "b"] and then.resource_version == r_before
    assert then.items[0].obj["metadata"]["resourceVersion"] == str(r1)
    now = await env.list(labels="app=web", resource_version=str(r_before), match="NotOlderThan")
    assert names(now) == ["c"] and now.resource_version == env.cache.revision
    assert names(await env.list(resource_version="0")) == ["a", "c"]


async def test_a_revision_in_the_future_times_out_with_504(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bosun.api.cachedlist.WAIT_SECONDS", 0.2)
    with pytest.raises(APIError) as exc:
        await env.list(resource_version=str(env.cache.revision + 100))
    assert exc.value.code == 504 and "Too large resource version" in exc.value.message


async def test_pages_are_one_snapshot_and_expire_with_the_ring(env: Env) -> None:
    for i in range(6):
        await env.put(f"p{i}", app="web" if i % 2 == 0 else "db")
    first = await env.list(labels="app=web", limit=2)
    assert names(first) == ["p0", "p2"] and first.continue_token
    await env.put("p4", app="db")   # changed after the first page: the next page still has it
    await env.put("p5", app="web")  # and does not see this one
    second = await env.list(labels="app=web", limit=2, continue_token=first.continue_token)
    assert names(second) == ["p4"] and second.resource_version == first.resource_version
    assert second.items[0].obj["metadata"]["labels"] == {"app": "web"}
    for i in range(50):  # the ring (40 events) moves past the first page's revision
        await env.put("churn", n=str(i))
    with pytest.raises(APIError) as exc:
        await env.list(labels="app=web", limit=2, continue_token=first.continue_token)
    assert exc.value.code == 410 and exc.value.reason == "Expired"
    assert "continue parameter is too old" in exc.value.message
    # The token handed back reads on from where it stopped, at whatever is current.
    fresh = exc.value.status()["metadata"]["continue"]
    rest = await env.list(labels="app=web", limit=10, continue_token=fresh)
    assert names(rest) == ["p5"]
    with pytest.raises(APIError) as exc:
        await env.list(resource_version=str(first.resource_version), match="Exact")
    assert exc.value.code == 410 and exc.value.message == "The resourceVersion for the provided list is too old."


async def test_node_index_and_namespaces(env: Env) -> None:
    await env.put("a", node="n1")
    await env.put("b", node="n2")
    await env.put("c", ns="other", node="n1")
    await env.put("d")
    assert names(await env.list(ns=None, fields="spec.nodeName=n1")) == ["a", "c"]
    assert names(await env.list(fields="spec.nodeName=n1")) == ["a"]
    assert names(await env.list(ns=None, fields="spec.nodeName=")) == ["d"]
    await env.put("d", node="n1")  # bound: moves from the "" set to n1's
    assert names(await env.list(ns=None, fields="spec.nodeName=n1")) == ["a", "d", "c"]  # by key
    assert names(await env.list(ns=None, fields="spec.nodeName!=n1")) == ["b"]
    assert names(await env.list(ns=None, fields="metadata.namespace=other,spec.nodeName=n1")) == ["c"]
    state = env.cache.resource(PODS.group_plural)
    assert sorted(state.fields["spec.nodeName"].by_value) == ["n1", "n2"]
    await env.delete("c", ns="other")
    assert "other" not in state.namespaces
    assert names(await env.list(ns="other")) == []


async def test_list_body_is_the_objects_json(env: Env) -> None:
    await env.put("a", app="x")
    await env.put("b")
    page = await env.list(limit=1)
    body = orjson.loads(list_body(PODS, page))
    assert body["kind"] == "PodList" and body["apiVersion"] == "v1"
    assert body["metadata"] == {"resourceVersion": str(page.resource_version), "continue": page.continue_token,
                                "remainingItemCount": 1}
    assert body["items"] == [page.items[0].obj]
    start, rv = continuetoken.decode(page.continue_token, PODS.key_prefix("ns"))
    assert start == PODS.key("ns", "b") and rv == str(page.resource_version)


async def test_node_index_without_decoding_pods_that_name_no_node(env: Env) -> None:
    """A pod whose stored JSON has no nodeName key is indexed under "" undecoded; one with it,
    or with an escaped key that may spell it, is decoded and indexed by its value."""
    async def raw(name: str, value: bytes) -> None:
        key = PODS.key("ns", name)
        kv = await env.store.get(key)
        rev = await (env.store.update(key, value, kv.mod_revision) if kv else env.store.create(key, value))
        await env.cache.wait_for(rev)

    def pod(name: str, spec: dict[str, Any]) -> bytes:
        return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"},
                             "spec": spec})

    await raw("plain", pod("plain", {"containers": [{"name": "c", "image": "i"}]}))
    await raw("escaped", b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"escaped","namespace":"ns"},'
                         b'"spec":{"node\\u004eame":"n1"}}')
    state = env.cache.resource(PODS.group_plural)
    assert state.all.items[PODS.key("ns", "plain")]._obj is None  # type: ignore[attr-defined]
    assert names(await env.list(fields="spec.nodeName=")) == ["plain"]
    assert names(await env.list(fields="spec.nodeName=n1")) == ["escaped"]
    await raw("plain", pod("plain", {"nodeName": "n2"}))  # bound: leaves the "" set
    assert names(await env.list(fields="spec.nodeName=")) == []
    assert names(await env.list(fields="spec.nodeName=n2")) == ["plain"]
    await raw("escaped", pod("escaped", {}))  # unbound again, undecoded: leaves n1's set
    assert names(await env.list(fields="spec.nodeName=n1")) == []
    assert names(await env.list(fields="spec.nodeName=")) == ["escaped"]
    await env.delete("plain")
    assert sorted(state.fields["spec.nodeName"].by_value) == [""]
    assert state.fields["spec.nodeName"].values == {PODS.key("ns", "escaped"): ""}
