"""Consistent lists from the watch cache with two API servers on one etcd: a list on one
server waits until its cache has the other server's writes, so a client that wrote through
one and lists through the other reads its writes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import start_server

from bosun.api.registry import by_plural
from bosun.client.rest import Client
from bosun.store.etcd import EtcdStore

CMS = by_plural("", "v1", "configmaps")
NS = by_plural("", "v1", "namespaces")
assert CMS and NS


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}


def test_a_write_on_one_server_is_listed_on_the_other(
    tmp_path: Path, etcd_endpoint: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No falling back to the store here: every consistent list must be the cache's.
    monkeypatch.setattr("bosun.api.cachedlist.WAIT_SECONDS", 600.0)
    a = start_server(tmp_path / "a", store_url=f"etcd://{etcd_endpoint}")
    b = start_server(tmp_path / "b", store_url=f"etcd://{etcd_endpoint}")
    ns = "list-cache-etcd"

    async def go() -> None:
        async with Client.from_kubeconfig(a.kubeconfig) as ca, Client.from_kubeconfig(b.kubeconfig) as cb:
            await ca.create(NS, {"metadata": {"name": ns}})
            try:
                for i in range(10):
                    made = await ca.create(CMS, cm(f"c{i}"), ns)
                    listed = await cb.list(CMS, ns)
                    assert made in listed["items"]
                    changed = await ca.patch(CMS, f"c{i}", {"data": {"k": "new"}}, ns)
                    assert changed in (await cb.list(CMS, ns))["items"]
                # A write outside the API's objects moves etcd's revision too; the cache
                # sees it as well, so the next consistent list is not held up.
                store = await EtcdStore.open([etcd_endpoint])
                try:
                    rev = await store.create("/bosun/cluster/list-cache-probe", b"x")
                    async with asyncio.timeout(60):  # a cache that missed it would wait 600 s
                        listed = await cb.list(CMS, ns)
                    assert int(listed["metadata"]["resourceVersion"]) >= rev
                    await store.delete("/bosun/cluster/list-cache-probe")
                finally:
                    await store.close()
            finally:
                await ca.delete(NS, ns)

    try:
        asyncio.run(go())
    finally:
        a.stop()
        b.stop()
