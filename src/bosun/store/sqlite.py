"""Embedded store on one SQLite file (WAL), the default backend.

Writes go through one writer thread that applies whatever is queued in a single transaction
(group commit): the fsync cost is paid once per batch, not once per write, which is what lets
thousands of concurrent API writers share one file. Each write still gets its own CAS check in
queue order and its own result. Reads use separate connections, so WAL lets them run while a
batch is being written; a point read of a key whose newest value the writer still holds in
memory, or of a key that does not exist, reads nothing at all.

The store is its file's only writer (flock), so the checks of a write (exists? expected
revision?) are answered by an in-memory index of key revisions rather than a read per
write, a batch is stored with one statement per kind, and the log keeps each value once.

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
# Newest values kept in memory by the writer, so that an update's previous value (for its
# watch event) is usually known without reading it back.
_VALUE_CACHE_BYTES = 32 << 20

# A log row stores its value once. A MODIFIED row names the revision of the key's previous
# write (prev_revision) instead of holding a second copy of it, unless that row may already
# be compacted away (then prev_value holds the copy, as in files from before prev_revision);
# a DELETED row's value is the previous value.
_INSERT_LOG = "INSERT INTO log (revision, key, type, value, prev_value, prev_revision) VALUES (?,?,?,?,?,?)"
_UPSERT_KV = ("INSERT INTO kv VALUES (?,?,?,?) ON CONFLICT(key) DO UPDATE "
              "SET value=excluded.value, mod_revision=excluded.mod_revision")
# Compaction keeps the rows that newer MODIFIED rows name as their previous value.
_COMPACT_LOG = """DELETE FROM log WHERE revision <= ?1 AND revision NOT IN (
    SELECT prev_revision FROM log WHERE revision > ?1 AND type = 1 AND prev_revision <= ?1)"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, mod_revision INTEGER NOT NULL,
    create_revision INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY, key TEXT NOT NULL, type INTEGER NOT NULL,
    value BLOB NOT NULL, prev_value BLOB, prev_revision INTEGER);
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
        # Writes go to the writer thread a loop turn's worth at a time: one wake-up of it for
        # every write the turn submitted (many, with many clients), not one each.
        self._queue: queue.SimpleQueue[builtins.list[_Op] | None] = queue.SimpleQueue()
        self._pending: builtins.list[_Op] = []
        self._wconn = _connect(path)
        self._wconn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._wconn.execute("PRAGMA journal_mode=WAL")
        self._wconn.execute("PRAGMA journal_size_limit=67108864")
        self._wconn.executescript(_SCHEMA)
        columns = [r[1] for r in self._wconn.execute("PRAGMA table_info(log)")]
        if "prev_revision" not in columns:
            self._wconn.execute("ALTER TABLE log ADD COLUMN prev_revision INTEGER")
        meta = dict(self._wconn.execute("SELECT name, value FROM meta").fetchall())
        # This process is the file's only writer (the lock above), so the revisions of every
        # key can live in memory: a write's checks need no read. Changed by the writer thread
        # only, once a batch is committed; point reads look up (see get).
        self._index: dict[str, tuple[int, int]] = {
            k: (m, c) for k, m, c in self._wconn.execute("SELECT key, mod_revision, create_revision FROM kv")
        }
        # The newest values (value, mod_revision, create_revision), oldest first; the same.
        self._values: dict[str, tuple[bytes, int, int]] = {}
        self._values_bytes = 0
        self._rev: int = meta["revision"]  # writer thread's view
        self._current: int = self._rev  # event loop's view: acknowledged writes
        self._compacted: int = meta["compacted"]
        self._w_compacted: int = self._compacted  # writer thread's view
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
        # What the writer committed last is in memory: a key it holds a value of, or one it
        # has no revision of, is answered without a read. Each look-up is one dict operation,
        # atomic against the writer thread, which updates the index before the values on a
        # write and the values before the index on a delete: a key it is changing is at
        # worst missed here and read from the file, which holds the commit already.
        known = self._values.get(key)
        if known is not None:
            return KeyValue(key, *known)
        if key not in self._index:
            return None
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
        if not self._pending:
            self._loop.call_soon(self._hand_over)
        self._pending.append(_Op(kind, key, value, expected, fut))
        return await fut

    def _hand_over(self) -> None:
        """The writes submitted during this turn of the loop, to the writer in one item."""
        ops, self._pending = self._pending, []
        if ops:
            self._queue.put(ops)

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
            batch = list(first)
            stop = False
            while len(batch) < _MAX_BATCH:  # one loop turn's writes are never split
                try:
                    ops = self._queue.get_nowait()
                except queue.Empty:
                    break
                if ops is None:
                    stop = True
                    break
                batch.extend(ops)
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
        """Check every write against the in-memory index, then store the batch's net effect
        with one statement per kind (executemany). Nothing in memory changes unless the
        transaction commits."""
        rev = self._rev
        # key -> (value, mod, create) after this batch, or None when deleted in it
        staged: dict[str, tuple[bytes, int, int] | None] = {}
        log_rows: list[tuple[int, str, int, bytes, bytes | None, int | None]] = []
        results: list[tuple[_Op, Any, BaseException | None]] = []
        events: list[WatchEvent] = []
        index = self._index
        try:
            for op in batch:
                key = op.key
                if key in staged:
                    cur = staged[key]
                    ent = None if cur is None else (cur[1], cur[2])
                else:
                    ent = index.get(key)
                if op.kind == "create":
                    if ent is not None:
                        results.append((op, None, KeyExistsError(key)))
                        continue
                    rev += 1
                    value = bytes(op.value)
                    staged[key] = (value, rev, rev)
                    log_rows.append((rev, key, 0, value, None, None))
                    results.append((op, rev, None))
                    events.append(WatchEvent("ADDED", key, value, rev))
                    continue
                if ent is None:
                    results.append((op, None, NotFoundError(key)))
                    continue
                mod, created = ent
                if op.expected and op.expected != mod:
                    results.append((op, None, ConflictError(key, op.expected, mod)))
                    continue
                old = self._old_value(conn, key, staged)
                rev += 1
                if op.kind == "update":
                    value = bytes(op.value)
                    staged[key] = (value, rev, created)
                    if mod > self._w_compacted:
                        log_rows.append((rev, key, 1, value, None, mod))
                    else:
                        log_rows.append((rev, key, 1, value, old, None))
                    results.append((op, rev, None))
                    events.append(WatchEvent("MODIFIED", key, value, rev, old))
                else:
                    staged[key] = None
                    log_rows.append((rev, key, 2, old, None, None))
                    results.append((op, KeyValue(key, old, rev, created), None))
                    events.append(WatchEvent("DELETED", key, old, rev, old))
            if log_rows:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_UPSERT_KV, [
                    (k, st[0], st[1], st[2]) for k, st in staged.items() if st is not None
                ])
                conn.executemany("DELETE FROM kv WHERE key=?", [(k,) for k, st in staged.items() if st is None])
                conn.executemany(_INSERT_LOG, log_rows)
                conn.execute("UPDATE meta SET value=? WHERE name='revision'", (rev,))
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            err = UnavailableError(f"sqlite write failed: {e}")
            self._report(self._finish, [(op, None, err) for op in batch], [], self._rev)
            return
        self._rev = rev
        self._keep(staged)
        self._report(self._finish, results, events, rev)

    def _old_value(
        self, conn: sqlite3.Connection, key: str, staged: dict[str, tuple[bytes, int, int] | None]
    ) -> bytes:
        """The key's current value (it exists): written in this batch, remembered, or read."""
        st = staged.get(key)
        if st is not None:
            return st[0]
        known = self._values.get(key)
        if known is not None:
            return known[0]
        row = conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        if row is None:  # the index and the file disagree: a bug, never a silent wrong answer
            raise sqlite3.DatabaseError(f"index names {key} but the file has no row")
        old: bytes = row[0]
        return old

    def _keep(self, staged: dict[str, tuple[bytes, int, int] | None]) -> None:
        """A committed batch: into the index and the value cache (bounded by bytes)."""
        index, values = self._index, self._values
        size = self._values_bytes
        for key, st in staged.items():
            gone = values.pop(key, None)
            if gone is not None:
                size -= len(gone[0])
            if st is None:
                del index[key]
            else:
                index[key] = (st[1], st[2])
                values[key] = st
                size += len(st[0])
        while size > _VALUE_CACHE_BYTES and values:
            size -= len(values.pop(next(iter(values)))[0])
        self._values_bytes = size

    def _apply_compact(self, conn: sqlite3.Connection, op: _Op) -> None:
        """Drop log rows up to the revision, then give the freed pages back to the filesystem."""
        target = min(op.expected, self._rev)
        err: BaseException | None = None
        compacted = 0
        try:
            compacted = conn.execute("SELECT value FROM meta WHERE name='compacted'").fetchone()[0]
            if target > compacted:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_COMPACT_LOG, (target,))
                conn.execute("UPDATE meta SET value=? WHERE name='compacted'", (target,))
                conn.execute("COMMIT")
                compacted = self._w_compacted = target
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
            if self._watchers:
                # Watchers resume before writers: the watch cache takes the batch, and queues
                # it to every API watcher, before any writer goes on to build its response,
                # so that a watch event is not behind the responses of the writes committed
                # with it. (The cache still finds the written objects: the write path handed
                # them over before writing, api/watchcache.Written.)
                for w in self._watchers:
                    w.set()
                self._loop.call_soon(self._resolve, results)
                return
        self._resolve(results)

    @staticmethod
    def _resolve(results: builtins.list[tuple[_Op, Any, BaseException | None]]) -> None:
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
        sql = ("SELECT l.revision, l.key, l.type, l.value, coalesce(l.prev_value, p.value) FROM log l"
               " LEFT JOIN log p ON l.type = 1 AND p.revision = l.prev_revision"
               " WHERE l.revision > ? AND l.revision <= ?")
        args: list[Any] = [after, until]
        if prefix:
            sql += " AND l.key >= ?" + ("" if high is None else " AND l.key < ?")
            args += [prefix] if high is None else [prefix, high]
        sql += " ORDER BY l.revision LIMIT ?"
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
            events = [WatchEvent(_TYPES[t], k, v, r, v if t == 2 and p is None else p) for r, k, t, v, p in rows]
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
        self._hand_over()  # what was submitted before closing is written before the writer stops
        self._queue.put(None)
        await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._pool.shutdown, True)
        for conn in [self._wconn, self._rconn, *self._pool_conns]:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        os.close(self._lock_fd)  # releases the lock
