"""The API server on etcd: two servers share one cluster state; an etcd outage is answered
with 503/504 and nothing half-written, and the server recovers when etcd comes back."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import start_server
from tests.fixtures.etcd import _healthy, start_etcd

from bosun.api import storecall
from bosun.api.registry import by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

CMS = by_plural("", "v1", "configmaps")
assert CMS is not None


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}


def test_two_servers_share_state_and_watch(tmp_path: Path, etcd_endpoint: str) -> None:
    """Two managers on one etcd: a write on one is listed and watched on the other."""
    a = start_server(tmp_path / "a", store_url=f"etcd://{etcd_endpoint}")
    b = start_server(tmp_path / "b", store_url=f"etcd://{etcd_endpoint}")

    async def go() -> None:
        async with Client.from_kubeconfig(a.kubeconfig) as ca, Client.from_kubeconfig(b.kubeconfig) as cb:
            start = (await cb.list(CMS, "default"))["metadata"]["resourceVersion"]
            seen: list[str] = []

            async def follow() -> None:
                async for ev in cb.watch(CMS, "default", resource_version=start, timeout_seconds=10):
                    seen.append(f'{ev["type"]} {ev["object"]["metadata"]["name"]}')
                    if ev["object"]["metadata"]["name"] == "from-a":
                        return

            task = asyncio.create_task(follow())
            await asyncio.sleep(0.2)
            await ca.create(CMS, cm("from-a"), "default")
            await asyncio.wait_for(task, 15)
            assert "ADDED from-a" in seen
            got = await cb.get(CMS, "from-a", "default")
            assert got["data"] == {"k": "from-a"}
            # Optimistic concurrency holds across servers.
            await ca.patch(CMS, "from-a", {"data": {"k": "changed"}}, "default")
            with pytest.raises(ApiError) as e:
                await cb.update(CMS, got)
            assert e.value.status == 409
            await ca.delete(CMS, "from-a", "default")

    try:
        asyncio.run(go())
    finally:
        a.stop()
        b.stop()


def test_etcd_outage_answers_503_and_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storecall, "STORE_TIMEOUT", 3.0)
    (tmp_path / "etcd").mkdir()
    proc, endpoint = start_etcd(tmp_path / "etcd")
    assert isinstance(proc.args, list)
    args = [str(a) for a in proc.args]
    server = start_server(tmp_path / "srv", store_url=f"etcd://{endpoint}")
    restarted: subprocess.Popen[bytes] | None = None
    try:
        async def before() -> None:
            async with Client.from_kubeconfig(server.kubeconfig) as c:
                await c.create(CMS, cm("before"), "default")

        asyncio.run(before())
        proc.kill()
        proc.wait()

        async def during() -> None:
            async with Client.from_kubeconfig(server.kubeconfig, ) as c:
                for call in (c.create(CMS, cm("during"), "default"), c.get(CMS, "before", "default")):
                    t0 = time.monotonic()
                    with pytest.raises(ApiError) as e:
                        await call
                    assert e.value.status in (503, 504), e.value.message
                    assert e.value.body.get("kind") == "Status"
                    assert time.monotonic() - t0 < 10

        asyncio.run(during())
        log = open(tmp_path / "etcd" / "etcd2.log", "wb")
        restarted = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        url = "http://" + endpoint
        deadline = time.monotonic() + 30
        while not _healthy(url):
            assert time.monotonic() < deadline, "etcd did not come back"
            time.sleep(0.1)

        async def after() -> None:
            async with Client.from_kubeconfig(server.kubeconfig) as c:
                for _ in range(100):  # the server reconnects by itself
                    try:
                        names = [o["metadata"]["name"] for o in (await c.list(CMS, "default"))["items"]]
                        break
                    except ApiError:
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the API did not recover after etcd came back")
                assert "before" in names and "during" not in names
                rv = (await c.list(CMS, "default"))["metadata"]["resourceVersion"]
                seen: list[str] = []

                async def follow() -> None:
                    async for ev in c.watch(CMS, "default", resource_version=rv, timeout_seconds=10):
                        seen.append(ev["object"]["metadata"]["name"])
                        return

                task = asyncio.create_task(follow())
                await asyncio.sleep(0.2)
                await c.create(CMS, cm("after"), "default")
                await asyncio.wait_for(task, 15)
                assert seen == ["after"]

        asyncio.run(after())
    finally:
        server.stop()
        for p in (proc, restarted):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
