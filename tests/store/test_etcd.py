"""etcd-only behaviour: an unreachable cluster is reported as unavailable, not as a crash."""

from __future__ import annotations

import socket
import time

import pytest

from bosun.store.base import UnavailableError
from bosun.store.etcd import EtcdStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_unreachable_etcd_is_unavailable() -> None:
    start = time.monotonic()
    with pytest.raises(UnavailableError):
        await EtcdStore.open([f"127.0.0.1:{_closed_port()}"], call_timeout=3)
    assert time.monotonic() - start < 10


async def test_several_endpoints_fail_over(etcd_endpoint: str) -> None:
    store = await EtcdStore.open([f"127.0.0.1:{_closed_port()}", etcd_endpoint], prefix="/failover-test")
    try:
        rev = await store.create("/registry/x", b"1")
        kv = await store.get("/registry/x")
        assert kv is not None and kv.mod_revision == rev
        await store.delete("/registry/x")
    finally:
        await store.close()
