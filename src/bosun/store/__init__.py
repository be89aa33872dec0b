"""The store: one contract (:mod:`bosun.store.base`), two backends, chosen by URL."""

from __future__ import annotations

from pathlib import Path

from bosun.store.base import (
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyValue,
    NotFoundError,
    Store,
    StoreError,
    UnavailableError,
    WatchEvent,
)

__all__ = [
    "CompactedError",
    "ConflictError",
    "EventType",
    "KeyExistsError",
    "KeyValue",
    "NotFoundError",
    "Store",
    "StoreError",
    "UnavailableError",
    "WatchEvent",
    "is_etcd",
    "open_store",
    "parse_etcd_endpoints",
]


def is_etcd(url: str) -> bool:
    """Whether the store URL names etcd (shared by several servers), not a SQLite file."""
    return url.startswith(("etcd://", "etcds://"))


def parse_etcd_endpoints(url: str) -> list[str]:
    """``etcd://h1:p1,h2:p2`` (or ``etcds://``) -> ["h1:p1", "h2:p2"]; ValueError when malformed."""
    rest = url.split("://", 1)[-1].rstrip("/")
    endpoints = [e.strip() for e in rest.split(",") if e.strip()]
    if not endpoints:
        raise ValueError(f"store URL {url!r} names no etcd endpoint (want etcd://host:port[,host:port])")
    for e in endpoints:
        host, sep, port = e.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"store URL {url!r}: bad etcd endpoint {e!r} (want host:port)")
    return endpoints


async def open_store(url: str, data_dir: Path) -> Store:
    """Open the store a ``--store`` URL names.

    "" or "sqlite": ``data_dir/state.db``; "sqlite:///abs/path.db": that file;
    "etcd://host:port[,host:port...]": an etcd cluster; "etcds://...": the embedded members
    (:mod:`bosun.store.etcdnode`), over TLS with the client certificate in ``data_dir``."""
    if url in ("", "sqlite"):
        from bosun.store.sqlite import SQLiteStore

        return await SQLiteStore.open(Path(data_dir) / "state.db")
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path.startswith("/") or path == "/" or path.endswith("/"):
            raise ValueError(f"store URL {url!r}: want sqlite:///absolute/path/to/file.db")
        from bosun.store.sqlite import SQLiteStore

        return await SQLiteStore.open(path)
    if url.startswith("etcd://"):
        endpoints = parse_etcd_endpoints(url)
        from bosun.store.etcd import EtcdStore

        return await EtcdStore.open(endpoints)
    if url.startswith("etcds://"):
        endpoints = parse_etcd_endpoints(url)
        from bosun.store.etcd import EtcdStore
        from bosun.store.etcdnode import client_tls

        try:
            tls = client_tls(Path(data_dir))
        except FileNotFoundError:
            raise ValueError(f"store URL {url!r}: {data_dir} holds no embedded etcd's client certificate") from None
        return await EtcdStore.open(endpoints, tls=tls)
    raise ValueError(f"unknown store URL {url!r} (want '', 'sqlite', 'sqlite:///path.db', 'etcd://host:port' or 'etcds://host:port')")
