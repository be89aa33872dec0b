"""Embedded store on one SQLite file (WAL), the default backend.

Writes go through one writer thread that applies whatever is queued in a single transaction
(group commit): the fsync cost is paid once per batch, not once per write, which is what lets
thousands of concurrent API writers share one file. Each write still gets its own CAS check in
queue order and its own result. Reads use separate connections, so WAL lets them run while a
batch is being written.

Watchers are served from an in-memory ring of the newest events (one per revision, contiguous),
and fall back to the ``log`` table for older revisions; a background task compacts that table
so the file stays bounded under constant churn.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bosun.store.base import (
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyValue,
    NotFoundError,
    StoreError,
    UnavailableError,
    WatchEvent,
)

_TYPES: tuple[EventType, ...] = ("ADDED", "MODIFIED", "DELETED")
_MAX_BATCH = 1000
_LOG_PAGE = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, mod_revision INTEGER NOT NULL,
    create_revision INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY, key TEXT NOT NULL, type INTEGER NOT NULL,
    value BLOB NOT NULL, prev_value BLOB);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""


def prefix_end(prefix: str) -> str | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound).

    UTF-8 byte order equals code point order, so bumping the last code point is exact for
    SQLite's BINARY collation."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class _Op:
    """One queued write; ``fut`` belongs to the store's event loop."""

    __slots__ = ("expected", "fut", "key", "kind", "value")

    def __init__(
        self, kind: str, key: str, value: bytes, expected: int, fut: asyncio.Future[Any]
    ) -> None:
        self.kind = kind
        self.key = key
        self.value = value
        self.expected = expected
        self.fut = fut


class SQLiteStore:
    """The :class:`~bosun.store.base.Store` contract on one SQLite file."""

    def __init__(
        self,
        path: str,
        loop: asyncio.AbstractEventLoop,
        *,
        history_seconds: float,
        min_history: int,
        max_history: int,
        compact_interval: float,
        ring_size: int,
    ) -> None:
        self._path = path
        self._loop = loop
        # The revision counter lives in this process, so one process at a time owns the file.
        self._lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock_fd)
            raise UnavailableError(f"{path} is in use by another store (lock held)") from e
        self._history_seconds = history_seconds
        self._min_history = min_history
        self._max_history = max(max_history, min_history)
        self._compact_interval = compact_interval
        self._ring_size = max(16, ring_size)
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._wconn = _connect(path)
        self._wconn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._wconn.execute("PRAGMA journal_mode=WAL")
        self._wconn.execute("PRAGMA journal_size_limit=67108864")
        self._wconn.executescript(_SCHEMA)
        meta = dict(self._wconn.execute("SELECT name, value FROM meta").fetchall())
        self._rev: int = meta["revision"]  # writer thread's view
        self._current: int = self._rev  # event loop's view: acknowledged writes
        self._compacted: int = meta["compacted"]
        self._rconn = _connect(path)  # point reads on the loop thread
        self._pool_conns: list[sqlite3.Connection] = []
        self._pool_local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bosun-sqlite-read")
        self._ring: list[WatchEvent] = []
        self._ring_start = self._current + 1  # revision of _ring[0]
        self._watchers: set[asyncio.Event] = set()
        self._closed = False
        self._samples: deque[tuple[float, int]] = deque(maxlen=4096)
        self._writer = threading.Thread(target=self._write_loop, name="bosun-sqlite-write", daemon=True)
        self._writer.start()
        self._compactor: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        history_seconds: float = 300,
        min_history: int = 1000,
        max_history: int = 20000,
        compact_interval: float = 30.0,
        ring_size: int = 4096,
    ) -> SQLiteStore:
        """Open (creating if needed) the store in ``path``; revisions continue where they stopped."""
        loop = asyncio.get_running_loop()
        Path(path).parent.mkdir(parents=True, exist_ok=True)

        def build() -> SQLiteStore:
            return cls(
                str(path),
                loop,
                history_seconds=history_seconds,
                min_history=min_history,
                max_history=max_history,
                compact_interval=compact_interval,
                ring_size=ring_size,
            )

        try:
            store = await loop.run_in_executor(None, build)
        except sqlite3.Error as e:
            raise UnavailableError(f"cannot open {path}: {e}") from e
        if compact_interval > 0:
            store._compactor = loop.create_task(store._compact_loop())
        return store

    # ---- reads -------------------------------------------------------------------------

    def _pool_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._pool_local, "conn", None)
        if conn is None:
            conn = _connect(self._path)
            self._pool_local.conn = conn
            self._pool_conns.append(conn)
        return conn

    async def _in_pool(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._closed:
            raise UnavailableError("store is closed")

        def run() -> Any:
            try:
                return fn(self._pool_conn())
            except sqlite3.Error as e:
                raise UnavailableError(f"sqlite read failed: {e}") from e

        return await self._loop.run_in_executor(self._pool, run)

    async def get(self, key: str) -> KeyValue | None:
        if self._closed:
            raise UnavailableError("store is closed")
        try:
            row = self._rconn.execute(
                "SELECT value, mod_revision, create_revision FROM kv WHERE key=?", (key,)
            ).fetchone()
        except sqlite3.Error as e:
            raise UnavailableError(f"sqlite read failed: {e}") from e
        return None if row is None else KeyValue(key, row[0], row[1], row[2])

    async def list(
        self, prefix: str, *, start_key: str = "", limit: int = 0
    ) -> tuple[list[KeyValue], int]:
        low = max(prefix, start_key)
        high = prefix_end(prefix)
        sql = "SELECT key, value, mod_revision, create_revision FROM kv WHERE key >= ?"
        args: list[Any] = [low]
        if high is not None:
            sql += " AND key < ?"
            args.append(high)
        sql += " ORDER BY key"
        if limit > 0:
            sql += " LIMIT ?"
            args.append(limit)

        def read(conn: sqlite3.Connection) -> tuple[list[KeyValue], int]:
            conn.execute("BEGIN")
            try:
                rev = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]
                items = [KeyValue(*r) for r in conn.execute(sql, args)]
            finally:
                conn.execute("COMMIT")
            return items, rev

        result: tuple[list[KeyValue], int] = await self._in_pool(read)
        return result

    async def count(self, prefix: str) -> int:
        high = prefix_end(prefix)
        sql = "SELECT count(*) FROM kv WHERE key >= ?" + ("" if high is None else " AND key < ?")
        args = (prefix,) if high is None else (prefix, high)
        n: int = await self._in_pool(lambda conn: conn.execute(sql, args).fetchone()[0])
        return n

    async def current_revision(self) -> int:
        return self._current

    async def compacted_revision(self) -> int:
        return self._compacted

    async def ping(self) -> None:
        await self._in_pool(lambda conn: conn.execute("SELECT 1").fetchone())

    # ---- writes ------------------------------------------------------------------------

    async def _submit(self, kind: str, key: str, value: bytes = b"", expected: int = 0) -> Any:
        if self._closed:
            raise UnavailableError("store is closed")
        # Checked here: a bad argument inside the batch would fail everyone else's writes too.
        if not isinstance(key, str) or not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"store keys are str and values bytes, got {type(key)}, {type(value)}")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Op(kind, key, value, expected, fut))
        return await fut

    async def create(self, key: str, value: bytes) -> int:
        rev: int = await self._submit("create", key, value)
        return rev

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        rev: int = await self._submit("update", key, value, expected_revision)
        return rev

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        kv: KeyValue = await self._submit("delete", key, b"", expected_revision)
        return kv

    async def compact(self, revision: int) -> None:
        await self._submit("compact", "", b"", revision)

    def _write_loop(self) -> None:
        """Writer thread: take everything queued, apply it in one transaction, report back."""
        conn = self._wconn
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stop = True
                    break
                batch.append(op)
            try:
                writes = [op for op in batch if op.kind != "compact"]
                if writes:
                    self._apply_batch(conn, writes)
                for op in batch:
                    if op.kind == "compact":
                        self._apply_compact(conn, op)
            except Exception as e:  # a bug must not leave callers waiting forever
                err = UnavailableError(f"sqlite writer failed: {e!r}")
                self._report(self._fail_all, batch, err)
            if stop:
                return

    def _report(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the event loop (unless the loop is gone: nobody is waiting then)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    @staticmethod
    def _fail_all(batch: builtins.list[_Op], err: BaseException) -> None:
        for op in batch:
            if not op.fut.done():
                op.fut.set_exception(err)

    def _apply_batch(self, conn: sqlite3.Connection, batch: builtins.list[_Op]) -> None:
        start_rev = self._rev
        results: list[tuple[_Op, Any, BaseException | None]] = []
        events: list[WatchEvent] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                try:
                    result, event = self._apply_one(conn, op)
                except StoreError as e:
                    results.append((op, None, e))
                else:
                    results.append((op, result, None))
                    events.append(event)
            if events:
                conn.execute("UPDATE meta SET value=? WHERE name='revision'", (self._rev,))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._rev = start_rev
            err = UnavailableError(f"sqlite write failed: {e}")
            results = [(op, None, err) for op in batch]
            events = []
        self._report(self._finish, results, events, self._rev)

    def _apply_one(self, conn: sqlite3.Connection, op: _Op) -> tuple[Any, WatchEvent]:
        key = op.key
        row = conn.execute(
            "SELECT value, mod_revision, create_revision FROM kv WHERE key=?", (key,)
        ).fetchone()
        if op.kind == "create":
            if row is not None:
                raise KeyExistsError(key)
            rev = self._rev + 1
            conn.execute("INSERT INTO kv VALUES (?,?,?,?)", (key, op.value, rev, rev))
            conn.execute("INSERT INTO log VALUES (?,?,0,?,NULL)", (rev, key, op.value))
            self._rev = rev
            return rev, WatchEvent("ADDED", key, op.value, rev)
        if row is None:
            raise NotFoundError(key)
        old, mod, created = row
        if op.expected and op.expected != mod:
            raise ConflictError(key, op.expected, mod)
        rev = self._rev + 1
        if op.kind == "update":
            conn.execute("UPDATE kv SET value=?, mod_revision=? WHERE key=?", (op.value, rev, key))
            conn.execute("INSERT INTO log VALUES (?,?,1,?,?)", (rev, key, op.value, old))
            self._rev = rev
            return rev, WatchEvent("MODIFIED", key, op.value, rev, old)
        conn.execute("DELETE FROM kv WHERE key=?", (key,))
        conn.execute("INSERT INTO log VALUES (?,?,2,?,?)", (rev, key, old, old))
        self._rev = rev
        return KeyValue(key, old, rev, created), WatchEvent("DELETED", key, old, rev, old)

    def _apply_compact(self, conn: sqlite3.Connection, op: _Op) -> None:
        """Drop log rows up to the revision, then give the freed pages back to the filesystem."""
        target = min(op.expected, self._rev)
        err: BaseException | None = None
        compacted = 0
        try:
            compacted = conn.execute("SELECT value FROM meta WHERE name='compacted'").fetchone()[0]
            if target > compacted:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM log WHERE revision <= ?", (target,))
                conn.execute("UPDATE meta SET value=? WHERE name='compacted'", (target,))
                conn.execute("COMMIT")
                compacted = target
                conn.execute("PRAGMA incremental_vacuum").fetchall()
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            err = UnavailableError(f"sqlite compaction failed: {e}")
        self._report(self._finish_compact, op, compacted, err)

    # ---- event loop side of a finished batch -------------------------------------------

    def _finish(
        self,
        results: builtins.list[tuple[_Op, Any, BaseException | None]],
        events: builtins.list[WatchEvent],
        rev: int,
    ) -> None:
        if events:
            self._ring.extend(events)
            if len(self._ring) > 2 * self._ring_size:
                drop = len(self._ring) - self._ring_size
                del self._ring[:drop]
                self._ring_start += drop
            self._current = rev
            for w in self._watchers:
                w.set()
        for op, result, err in results:
            if op.fut.done():
                continue
            if err is not None:
                op.fut.set_exception(err)
            else:
                op.fut.set_result(result)

    def _finish_compact(self, op: _Op, compacted: int, err: BaseException | None) -> None:
        self._compacted = max(self._compacted, compacted)
        if op.fut.done():
            return
        if err is not None:
            op.fut.set_exception(err)
        else:
            op.fut.set_result(None)

    # ---- watch -------------------------------------------------------------------------

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchEvent]:
        if from_revision < self._compacted:
            raise CompactedError(from_revision, self._compacted)
        wake = asyncio.Event()
        self._watchers.add(wake)
        last = from_revision
        try:
            while not self._closed:
                if last + 1 >= self._ring_start:
                    wake.clear()
                    pending = self._ring[last + 1 - self._ring_start :]
                    if not pending:
                        await wake.wait()
                        continue
                else:
                    pending, upto = await self._read_log(prefix, last)
                    for event in pending:
                        yield event
                    last = upto
                    continue
                for event in pending:
                    last = event.revision
                    if event.key.startswith(prefix):
                        yield event
        finally:
            self._watchers.discard(wake)

    async def _read_log(self, prefix: str, after: int) -> tuple[builtins.list[WatchEvent], int]:
        """Events under ``prefix`` after ``after`` from the log table (for watchers behind the
        ring), and the revision the caller has now seen everything up to."""
        until = self._ring_start - 1
        high = prefix_end(prefix)
        sql = "SELECT revision, key, type, value, prev_value FROM log WHERE revision > ? AND revision <= ?"
        args: list[Any] = [after, until]
        if prefix:
            sql += " AND key >= ?" + ("" if high is None else " AND key < ?")
            args += [prefix] if high is None else [prefix, high]
        sql += " ORDER BY revision LIMIT ?"
        args.append(_LOG_PAGE)

        def read(conn: sqlite3.Connection) -> tuple[list[WatchEvent], int]:
            conn.execute("BEGIN")
            try:
                compacted = conn.execute("SELECT value FROM meta WHERE name='compacted'").fetchone()[0]
                if after < compacted:
                    raise CompactedError(after, compacted)
                rows = conn.execute(sql, args).fetchall()
            finally:
                conn.execute("COMMIT")
            events = [WatchEvent(_TYPES[t], k, v, r, p) for r, k, t, v, p in rows]
            return events, (until if len(rows) < _LOG_PAGE else rows[-1][0])

        result: tuple[list[WatchEvent], int] = await self._in_pool(read)
        return result

    # ---- compaction --------------------------------------------------------------------

    def _compaction_target(self) -> int:
        now = time.monotonic()
        self._samples.append((now, self._current))
        by_time = 0
        for t, rev in self._samples:
            if t > now - self._history_seconds:
                break
            by_time = rev
        # History is kept for history_seconds, but never more than max_history revisions:
        # under heavy churn a time window alone lets the file grow with the write rate.
        by_count = self._current - self._max_history
        return min(max(by_time, by_count), self._current - self._min_history)

    async def _compact_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._compact_interval)
            target = self._compaction_target()
            if target > self._compacted:
                with contextlib.suppress(StoreError):
                    await self.compact(target)

    # ---- shutdown ----------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in self._watchers:
            w.set()
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        self._queue.put(None)
        await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._pool.shutdown, True)
        for conn in [self._wconn, self._rconn, *self._pool_conns]:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        os.close(self._lock_fd)  # releases the lock
