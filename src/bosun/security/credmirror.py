"""The credential tables of every manager kept in step through the store.

Node credentials (issued by whichever manager an agent asked) and user tokens (``bosun token
create --user`` on one manager's machine) live in files under ``pki/`` that the
authenticator re-reads when they change. A manager of a shared cluster mirrors them: what it
adds locally goes to the store, what another manager added comes from the store into its
files. Only SHA-256 digests are in these tables, so the store holds nothing that
authenticates anyone. Entries are merged by key (a node's name, a token's digest): a newer
credential for a node replaces the older one everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bosun.security.files import write_atomic
from bosun.security.tokens import node_tokens_path, users_path
from bosun.store.base import KeyExistsError, NotFoundError, Store, StoreError

log = logging.getLogger(__name__)

PREFIX = "/bosun/cluster/credentials/"
POLL_SECONDS = 1.0

Entries = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Table:
    """One credentials file: where it lives, its store key, and its entries by key."""

    name: str
    path: Callable[[Path], Path]
    read: Callable[[Any], Entries]
    write: Callable[[Entries], Any]

    @property
    def key(self) -> str:
        return PREFIX + self.name


def _nodes(body: Any) -> Entries:
    nodes = body.get("nodes") if isinstance(body, dict) else None
    return {str(k): str(v) for k, v in nodes.items()} if isinstance(nodes, dict) else {}


def _users(body: Any) -> Entries:
    tokens = body.get("tokens") if isinstance(body, dict) else None
    return {str(e["sha256"]): e for e in tokens or [] if isinstance(e, dict) and e.get("sha256")}


TABLES = (
    Table("nodes", node_tokens_path, _nodes, lambda entries: {"nodes": entries}),
    Table("users", users_path, _users, lambda entries: {"tokens": list(entries.values())}),
)


def _decode(table: Table, raw: bytes) -> Entries:
    try:
        return table.read(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return {}


class CredentialMirror:
    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self._mtimes: dict[str, int | None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    def _local(self, table: Table) -> Entries:
        try:
            return _decode(table, table.path(self.data_dir).read_bytes())
        except FileNotFoundError:
            return {}

    def _mtime(self, table: Table) -> int | None:
        try:
            return table.path(self.data_dir).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    async def share(self, table: Table) -> None:
        """This manager's entries into the store (merged with everyone's)."""
        local = self._local(table)
        while True:
            kv = await self.store.get(table.key)
            shared = _decode(table, kv.value) if kv is not None else {}
            merged = {**shared, **local}
            if merged == shared:
                return
            body = orjson.dumps(table.write(merged))
            try:
                if kv is None:
                    await self.store.create(table.key, body)
                else:
                    await self.store.update(table.key, body, kv.mod_revision)
                return
            except (KeyExistsError, NotFoundError, StoreError):
                continue  # another manager wrote meanwhile: merge again

    def take(self, table: Table, raw: bytes) -> None:
        """Everyone's entries into this manager's file (the store's win: they are newer)."""
        local = self._local(table)
        merged = {**local, **_decode(table, raw)}
        if merged != local:
            write_atomic(table.path(self.data_dir), orjson.dumps(table.write(merged), option=orjson.OPT_INDENT_2))
        self._mtimes[table.name] = self._mtime(table)

    def changed(self) -> None:
        """A credential was issued here: share it now rather than at the next look."""
        self._wake.set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._follow(), name="credentials-from-store"),
                       loop.create_task(self._publish(), name="credentials-to-store")]

    async def _follow(self) -> None:
        by_key = {t.key: t for t in TABLES}
        while True:
            try:
                rev = await self.store.current_revision()
                for table in TABLES:
                    kv = await self.store.get(table.key)
                    if kv is not None:
                        self.take(table, kv.value)
                    await self.share(table)
                async for ev in self.store.watch(PREFIX, rev):
                    if ev.type != "DELETED" and ev.key in by_key:
                        self.take(by_key[ev.key], ev.value)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store was away: start over from a fresh read
                log.warning("following the cluster's credentials: %s; retrying", e)
                await asyncio.sleep(1.0)

    async def _publish(self) -> None:
        """Share a table whenever its file changed here (this server, or `bosun token create`)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            for table in TABLES:
                mtime = self._mtime(table)
                if mtime == self._mtimes.get(table.name, -1):
                    continue
                try:
                    await self.share(table)
                    self._mtimes[table.name] = mtime
                except StoreError as e:
                    log.warning("sharing %s credentials: %s", table.name, e)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
