"""The store on an etcd v3 cluster (Debian's etcd 3.4), for several API servers at once.

Talks gRPC through ``grpc.aio`` with the message classes and stubs that ship with ``aetcd``
(its own client hides the txn responses and watch ids this backend needs). etcd already has
everything the contract asks for: one global revision, transactions for compare-and-swap and
watch with previous values; this module only translates.

Revision mapping: etcd's compaction at C keeps revision C and drops everything before it,
so "watch after revision R" still works for R = C - 1; that is what
:meth:`compacted_revision` reports, and :meth:`compact` (R) asks etcd to compact at R + 1.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ipaddress
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from aetcd import rpc

from bosun.store.base import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyValue,
    NotFoundError,
    StoreError,
    UnavailableError,
    WatchEvent,
)

_UNAVAILABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
}
_CMP = rpc.Compare
_PAGE = 1000  # keys per Range call when listing everything: etcd builds each response in memory
# Lists of thousands of 3 KB objects are far above gRPC's default 4 MB receive limit.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
_PUT_EVENT = 0
_READ_RETRY_SECONDS = 5.0


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with ``prefix``" (b"\\0" means no bound)."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\0"


def _target(endpoints: builtins.list[str]) -> str:
    """One gRPC target for all endpoints when they are IP literals (gRPC then fails over by
    itself); otherwise the first endpoint (the store rotates on connection errors)."""
    try:
        for e in endpoints:
            ipaddress.IPv4Address(e.rpartition(":")[0])
    except ValueError:
        return endpoints[0]
    return "ipv4:" + ",".join(endpoints)


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """Mutual TLS to an etcd that asks clients for a certificate (the embedded one): its CA,
    and this client's certificate and key, all PEM."""

    ca: bytes
    cert: bytes
    key: bytes


# Every member's serving certificate names this: one gRPC target may list several members'
# addresses, and the name checked must be the same for all of them.
ETCD_SERVER_NAME = "etcd"


def channel(target: str, tls: EtcdTLS | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
    creds = grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert)
    return grpc.aio.secure_channel(target, creds,
                                   options=[*_CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", ETCD_SERVER_NAME)])


def _error(e: grpc.aio.AioRpcError) -> StoreError:
    if e.code() in _UNAVAILABLE:
        return UnavailableError(f"etcd unavailable: {e.code().name}: {e.details()}")
    return StoreError(f"etcd error: {e.code().name}: {e.details()}")


class EtcdStore:
    """The :class:`~bosun.store.base.Store` contract on etcd; ``prefix`` namespaces every key."""

    def __init__(
        self,
        endpoints: builtins.list[str],
        prefix: str,
        *,
        history_seconds: float,
        compact_interval: float,
        timeout: float,
        tls: EtcdTLS | None = None,
    ) -> None:
        self._tls = tls
        self._endpoints = endpoints
        self._endpoint_index = 0
        self._prefix = prefix.encode()
        self._history_seconds = history_seconds
        self._compact_interval = compact_interval
        self._timeout = timeout
        self._target = _target(endpoints)
        self._channel = channel(self._target, tls)
        self._kv = rpc.KVStub(self._channel)
        self._watch_stub = rpc.WatchStub(self._channel)
        self._samples: deque[tuple[float, int]] = deque(maxlen=4096)
        self._compacted = 0  # contract meaning (see module docstring); a lower bound
        self._compactor: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        endpoints: builtins.list[str],
        *,
        prefix: str = "",
        history_seconds: float = 300,
        compact_interval: float = 60.0,
        call_timeout: float = 10.0,
        tls: EtcdTLS | None = None,
    ) -> EtcdStore:
        """Connect to etcd at ``endpoints`` ("host:port"); raises UnavailableError if it does
        not answer."""
        if not endpoints:
            raise ValueError("no etcd endpoint given")
        store = cls(
            endpoints,
            prefix,
            history_seconds=history_seconds,
            compact_interval=compact_interval,
            timeout=call_timeout,
            tls=tls,
        )
        try:
            await store.ping()
        except BaseException:
            await store.close()
            raise
        if compact_interval > 0:
            store._compactor = asyncio.get_running_loop().create_task(store._compact_loop())
        return store

    # ---- plumbing ----------------------------------------------------------------------

    def _full(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _short(self, key: bytes) -> str:
        return key[len(self._prefix) :].decode()

    async def _rotate(self) -> None:
        """Point at the next endpoint after a connection error (when gRPC cannot fail over)."""
        if self._target.startswith("ipv4:") or len(self._endpoints) == 1:
            return
        self._endpoint_index = (self._endpoint_index + 1) % len(self._endpoints)
        old = self._channel
        self._target = self._endpoints[self._endpoint_index]
        self._channel = channel(self._target, self._tls)
        self._kv = rpc.KVStub(self._channel)
        self._watch_stub = rpc.WatchStub(self._channel)
        await old.close(grace=1.0)

    async def _call(self, method: str, request: Any) -> Any:
        """One KV call. A read (``Range``) that meets an unavailable cluster is tried again
        for up to :data:`_READ_RETRY_SECONDS`, as etcd's own client does: an election (a
        member lost, "leader changed") takes a few seconds and a read has no side effect. A
        write is not: its outcome is unknown, so the caller is told at once."""
        if self._closed:
            raise UnavailableError("store is closed")
        delay, deadline = 0.1, time.monotonic() + (_READ_RETRY_SECONDS if method == "Range" else 0)
        while True:
            try:
                return await getattr(self._kv, method)(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as e:
                err = _error(e)
                if isinstance(err, UnavailableError):
                    await self._rotate()
                    if not self._closed and time.monotonic() + delay < deadline:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 1.0)
                        continue
                raise err from e

    async def _txn(
        self, compare: builtins.list[Any], success: builtins.list[Any], failure: builtins.list[Any]
    ) -> Any:
        return await self._call("Txn", rpc.TxnRequest(compare=compare, success=success, failure=failure))

    def _range_op(self, key: bytes) -> Any:
        return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))

    def _cas_compare(self, key: bytes, expected: int) -> Any:
        if expected:
            return _CMP(key=key, target=_CMP.MOD, result=_CMP.EQUAL, mod_revision=expected)
        return _CMP(key=key, target=_CMP.VERSION, result=_CMP.GREATER, version=0)

    def _cas_failure(self, key: str, expected: int, resp: Any) -> StoreError:
        kvs = resp.responses[0].response_range.kvs
        if not kvs:
            return NotFoundError(key)
        return ConflictError(key, expected, kvs[0].mod_revision)

    # ---- reads -------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        resp = await self._call("Range", rpc.RangeRequest(key=self._full(key)))
        if not resp.kvs:
            return None
        kv = resp.kvs[0]
        return KeyValue(key, kv.value, kv.mod_revision, kv.create_revision)

    def _range_bounds(self, prefix: str) -> tuple[bytes, bytes]:
        full = self._full(prefix)
        return (full or b"\0"), prefix_end(full)

    async def list(
        self, prefix: str, *, start_key: str = "", limit: int = 0
    ) -> tuple[builtins.list[KeyValue], int]:
        low, high = self._range_bounds(prefix)
        if start_key:
            low = max(low, self._full(start_key))
        want = limit if limit > 0 else 0
        items: builtins.list[KeyValue] = []
        revision = 0  # pinned after the first page, so that all pages are one snapshot
        while True:
            page = _PAGE if want == 0 else min(_PAGE, want - len(items))
            resp = await self._call(
                "Range", rpc.RangeRequest(key=low, range_end=high, limit=page, revision=revision)
            )
            revision = revision or resp.header.revision
            items.extend(
                KeyValue(self._short(kv.key), kv.value, kv.mod_revision, kv.create_revision)
                for kv in resp.kvs
            )
            if not resp.more or not resp.kvs or (want and len(items) >= want):
                return items, revision
            low = resp.kvs[-1].key + b"\0"

    async def count(self, prefix: str) -> int:
        low, high = self._range_bounds(prefix)
        resp = await self._call("Range", rpc.RangeRequest(key=low, range_end=high, count_only=True))
        n: int = resp.count
        return n

    async def current_revision(self) -> int:
        resp = await self._call("Range", rpc.RangeRequest(key=self._full("/"), count_only=True))
        rev: int = resp.header.revision
        return rev

    async def compacted_revision(self) -> int:
        """Asks etcd (another server may have compacted): a read at revision 1 fails once
        anything was compacted, and then a watch from revision 1 is refused with the number."""
        try:
            await self._call("Range", rpc.RangeRequest(key=b"\0bosun-probe", revision=1, count_only=True))
            return self._compacted
        except StoreError as e:
            if "compacted" not in str(e):
                raise
        call = self._watch_stub.Watch(timeout=self._timeout)
        try:
            probe = rpc.WatchCreateRequest(key=b"\0bosun-probe", start_revision=1)
            await call.write(rpc.WatchRequest(create_request=probe))
            while True:  # "created" comes first, the refusal right after it
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    raise UnavailableError("etcd closed the watch stream")
                if resp.compact_revision:
                    self._compacted = max(self._compacted, resp.compact_revision - 1)
                    return self._compacted
        except grpc.aio.AioRpcError as e:
            raise _error(e) from e
        finally:
            call.cancel()

    async def ping(self) -> None:
        await self._call("Range", rpc.RangeRequest(key=b"\0bosun-ping", count_only=True))

    # ---- writes ------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        full = self._full(key)
        resp = await self._txn(
            [_CMP(key=full, target=_CMP.CREATE, result=_CMP.EQUAL, create_revision=0)],
            [rpc.RequestOp(request_put=rpc.PutRequest(key=full, value=value))],
            [],
        )
        if not resp.succeeded:
            raise KeyExistsError(key)
        rev: int = resp.header.revision
        return rev

    async def _cas(self, key: str, full: bytes, expected_revision: int, op: Any) -> Any:
        """``op`` on ``full`` (the stored name of ``key``) in one transaction, only if the key
        is still at ``expected_revision`` (0: whatever its revision); else why not, raised."""
        resp = await self._txn(
            [self._cas_compare(full, expected_revision)], [op], [self._range_op(full)],
        )
        if not resp.succeeded:
            raise self._cas_failure(key, expected_revision, resp)
        return resp

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        full = self._full(key)
        resp = await self._cas(key, full, expected_revision,
                               rpc.RequestOp(request_put=rpc.PutRequest(key=full, value=value)))
        rev: int = resp.header.revision
        return rev

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        full = self._full(key)
        resp = await self._cas(key, full, expected_revision,
                               rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=full, prev_kv=True)))
        prev = resp.responses[0].response_delete_range.prev_kvs
        if not prev:  # deleted by someone else between compare and delete: cannot happen in a txn
            raise NotFoundError(key)
        return KeyValue(key, prev[0].value, resp.header.revision, prev[0].create_revision)

    async def compact(self, revision: int) -> None:
        current = await self.current_revision()
        target = min(revision + 1, current)
        if target <= self._compacted + 1:
            return
        try:
            await self._call("Compact", rpc.CompactionRequest(revision=target))
        except StoreError as e:
            if "compacted" not in str(e):  # another server got there first
                raise
        self._compacted = max(self._compacted, target - 1)

    # ---- watch -------------------------------------------------------------------------

    def _event(self, ev: Any) -> WatchEvent:
        kv = ev.kv
        key = self._short(kv.key)
        prev = ev.prev_kv.value if ev.HasField("prev_kv") else None
        if ev.type == _PUT_EVENT:
            if kv.create_revision == kv.mod_revision:
                return WatchEvent("ADDED", key, kv.value, kv.mod_revision)
            return WatchEvent("MODIFIED", key, kv.value, kv.mod_revision, prev)
        return WatchEvent("DELETED", key, prev or b"", kv.mod_revision, prev)

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchEvent]:
        if self._closed:
            raise UnavailableError("store is closed")
        low, high = self._range_bounds(prefix)
        call = self._watch_stub.Watch()
        try:
            await call.write(
                rpc.WatchRequest(
                    create_request=rpc.WatchCreateRequest(
                        key=low, range_end=high, start_revision=from_revision + 1, prev_kv=True
                    )
                )
            )
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    raise UnavailableError("etcd closed the watch stream")
                if resp.compact_revision:
                    self._compacted = max(self._compacted, resp.compact_revision - 1)
                    raise CompactedError(from_revision, resp.compact_revision - 1)
                if resp.canceled:
                    raise UnavailableError(f"etcd canceled the watch: {resp.cancel_reason}")
                for ev in resp.events:
                    yield self._event(ev)
        except grpc.aio.AioRpcError as e:
            if self._closed:  # the store was closed under the watch: end it as SQLite does
                return
            raise _error(e) from e
        except asyncio.CancelledError:
            # grpc reports a call cut by channel.close() as CancelledError; only a cancelled
            # task must see it.
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                return
            raise
        finally:
            call.cancel()

    # ---- compaction --------------------------------------------------------------------

    async def _compact_loop(self) -> None:
        """Compact to the revision that was current ``history_seconds`` ago."""
        while not self._closed:
            await asyncio.sleep(self._compact_interval)
            with contextlib.suppress(StoreError):
                now = time.monotonic()
                self._samples.append((now, await self.current_revision()))
                target = 0
                for t, rev in self._samples:
                    if t > now - self._history_seconds:
                        break
                    target = rev
                if target > self._compacted:
                    await self.compact(target)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        await self._channel.close(grace=1.0)
