"""One store watch, fanned out to every API watcher.

Without this, 100 kubectl/informer watches would be 100 store watches each decoding every
event. Here the store is watched once; each event is decoded once, serialized once per wire
format, kept in a bounded ring so that a watcher can resume from a recent resourceVersion,
and handed to the watchers of its resource. A watcher asking for a revision older than the
ring gets 410 Gone and relists, which is what Kubernetes' own watch cache does.

The cache also keeps every object's current state (:mod:`bosun.api.cachestate`), loaded
with one store list at start and kept by the same events, so that lists are served from
memory (:mod:`bosun.api.cachedlist`). It watches every key, not only the API's objects, so
that its revision reaches the store's current one and a consistent read can wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from bosun.aio import cancel_and_wait
from bosun.api import errors
from bosun.api.cachestate import ResourceState
from bosun.api.objects import decode, encode
from bosun.store.base import CompactedError, KeyValue, Store, StoreError, WatchEvent

if TYPE_CHECKING:
    from bosun.security.encryption import ResourceTransformer

log = logging.getLogger(__name__)

OBJECTS_PREFIX = "/registry/"
WATCH_PREFIX = "/"  # every write moves the revision a consistent read waits for


# Objects written but not yet handed to their events, beyond which the oldest are forgotten
# (events that never came: a reset); and writes in flight, far more than are ever in flight
# at once (the rest: writes that failed).
_WRITTEN_MAX = 20000
_IN_FLIGHT_MAX = 2000


class Written:
    """The objects this server's write path stored, for their events, which then need no
    decoding: by (key, revision) once the write returned, and by key while it is in flight.

    An event often comes before its write returns: the store reports a batch of writes and
    the cache may run before their writers do. An in-flight object is its event's only if
    the event carries the very bytes object the write handed to the store (a store that
    copies or re-encodes values, or a write that failed, never matches), and it is then
    given the event's resourceVersion, the one its writer is about to set."""

    __slots__ = ("done", "in_flight")

    def __init__(self) -> None:
        self.done: dict[tuple[str, int], dict[str, Any]] = {}
        self.in_flight: dict[str, tuple[bytes, dict[str, Any]]] = {}

    def take(self, key: str, revision: int, value: bytes) -> dict[str, Any] | None:
        obj = self.done.pop((key, revision), None)
        if obj is None:
            flying = self.in_flight.get(key)
            if flying is not None and flying[0] is value:
                del self.in_flight[key]
                obj = flying[1]
                obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
        return obj

    def writing(self, key: str, value: bytes, obj: dict[str, Any]) -> None:
        flying = self.in_flight
        flying.pop(key, None)  # re-inserted last: the dict's order is the eviction order
        flying[key] = (value, obj)
        _bound(flying, _IN_FLIGHT_MAX)

    def landed(self, key: str, obj: dict[str, Any]) -> None:
        """The write of ``obj`` returned: it is no longer in flight."""
        flying = self.in_flight.get(key)
        if flying is not None and flying[1] is obj:
            del self.in_flight[key]

    def written(self, key: str, revision: int, obj: dict[str, Any]) -> None:
        """The write of ``obj`` returned before its event came."""
        self.landed(key, obj)
        self.done[(key, revision)] = obj
        _bound(self.done, _WRITTEN_MAX)


def _bound(d: dict[Any, Any], most: int) -> None:
    if len(d) > most:
        for k in list(itertools.islice(d, most // 4)):
            del d[k]


class CachedEvent:
    """A store event decoded lazily and at most once, shared by every watcher."""

    __slots__ = ("_absent", "_before", "_escaped", "_json", "_obj", "_prev", "_probe", "_variants", "group_plural",
                 "key", "namespace", "prev_revision", "raw", "revision", "type", "written")

    def __init__(self, ev: WatchEvent, written: Written | None = None) -> None:
        self.type = ev.type
        self.key = ev.key
        self.revision = ev.revision
        parts = ev.key.split("/")
        # /registry/<group_plural>/<ns>/<name> or /registry/<group_plural>/<name>
        self.group_plural = parts[2] if len(parts) > 2 else ""
        self.namespace = parts[3] if len(parts) == 5 else ""
        self.raw = ev
        self._obj: dict[str, Any] | None = None
        self.written = written
        self._prev: dict[str, Any] | None = None
        # The cache's previous event for this key: its object is this event's prev, so a
        # selector watch (a node's pods: spec.nodeName=...) need not decode prev_value.
        self._before: CachedEvent | None = None
        self._json: bytes | None = None
        self._variants: dict[str, bytes] | None = None
        # What lacks() found, kept: the cache's field index, the access control and the
        # metrics collector each ask of every pod event (two of them the same token), and a
        # scan of a pod's few KB costs a few microseconds, ``\\u`` (two bytes) several more.
        self._escaped: bool | None = None
        self._probe: bytes | None = None  # the last token asked, and whether it was absent
        self._absent = False
        # The revision of the object before this change (0: unknown, or none before).
        self.prev_revision = 0

    @property
    def obj(self) -> dict[str, Any]:
        """The object as watchers see it (for DELETED: its last state, at the deletion revision)."""
        if self._obj is None:
            # The object this server wrote itself, if the write path has handed it over by
            # now (it usually has: consumers look at events a moment after they arrive).
            known = self.written.take(self.key, self.revision, self.raw.value) if self.written is not None else None
            self._obj = known if known is not None else decode(self.raw.value, self.revision)
        return self._obj

    @property
    def prev(self) -> dict[str, Any] | None:
        """The object before this change (for selector watches: did it match before?)."""
        if self._prev is None and self.raw.prev_value is not None:
            before = self._before
            self._before = None
            self._prev = before.obj if before is not None else decode(
                self.raw.prev_value, self.prev_revision or self.revision)
        return self._prev

    def lacks(self, token: bytes) -> bool:
        """True when the stored JSON, still undecoded, has no ``token``: bosun writes it with
        orjson, which escapes no ASCII letter, so a key that is not in the bytes is not in the
        object (a value another writer escaped, or one still sealed, is decoded instead)."""
        if self._obj is not None:
            return False
        value = self.raw.value
        if self._escaped is None:
            # No backslash at all (one memchr) is the common answer: no escape either.
            self._escaped = value[:1] != b"{" or (b"\\" in value and b"\\u" in value)
        if self._escaped:
            return False
        if token != self._probe:
            self._probe = token
            self._absent = token not in value
        return self._absent

    def json(self) -> bytes:
        """The object's JSON, built once for every list and watcher that sends it."""
        if self._json is None:
            self._json = orjson.dumps(self.obj)
        return self._json

    def variant_json(self, variant: str, make: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
        """The JSON of ``make(obj)``, built once for every watcher that asks for ``variant``
        (the object at another version than stored: ``make`` must give the same object for
        the same variant, whoever asks)."""
        variants = self._variants
        if variants is None:
            variants = self._variants = {}
        out = variants.get(variant)
        if out is None:
            out = variants[variant] = orjson.dumps(make(self.obj))
        return out


class Unreadable(CachedEvent):
    """A sealed object that no configured key opens: kept in the state so that a list that
    would return it fails as a read of it does (500 naming the key), instead of leaving it out."""

    __slots__ = ("error",)

    def __init__(self, ev: WatchEvent, error: str) -> None:
        super().__init__(ev)
        self.error = error

    @property
    def obj(self) -> dict[str, Any]:
        raise errors.internal(self.error)


# A watcher's filter returns the event type to send (possibly rewritten for selectors:
# an object that starts matching is ADDED, one that stops matching is DELETED) or None.
Filter = Callable[[CachedEvent], str | None]


class TooOldError(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Watcher:
    """One API watch: a bounded queue fed by the cache. Overflow closes the watch (the
    client re-watches from its last resourceVersion) rather than growing memory forever."""

    MAX_PENDING = 20000

    def __init__(self, cache: WatchCache, group_plural: str, from_revision: int, filt: Filter) -> None:
        self.cache = cache
        self.group_plural = group_plural
        self.from_revision = from_revision
        self.filter = filt
        self.queue: asyncio.Queue[tuple[str, CachedEvent] | None] = asyncio.Queue()
        self.closed = False

    def offer(self, ev: CachedEvent) -> None:
        if self.closed or ev.revision <= self.from_revision:
            return
        typ = self.filter(ev)
        if typ is None:
            return
        if self.queue.qsize() >= self.MAX_PENDING:
            self.close()
            return
        self.queue.put_nowait((typ, ev))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
            self.cache.unsubscribe(self)


class WatchCache:
    def __init__(self, store: Store, capacity: int = 50000) -> None:
        self.store = store
        self.capacity = capacity
        self.buffer: deque[CachedEvent] = deque(maxlen=capacity)
        self.revision = 0
        self.oldest = 0  # watches from a revision >= this can be served
        self.watchers: dict[str, set[Watcher]] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.listeners: list[Callable[[CachedEvent], None]] = []
        # Objects this server just wrote or is writing: their events need no decoding.
        self.written = Written()
        # group_plural -> its current objects (each key's last event): what lists read, and
        # the next event's prev.
        self.state: dict[str, ResourceState] = {}
        # (revision, sequence, future) of the reads waiting for the cache to reach a revision.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        # Encryption at rest: group_plural -> transformer; their events are opened on arrival.
        self.sealed: dict[str, ResourceTransformer] = {}

    def writing(self, key: str, value: bytes, obj: dict[str, Any]) -> None:
        """Called by the write path just before it hands ``value`` (``obj`` encoded) to the
        store, so that the event of the write finds ``obj`` even if it comes first."""
        self.written.writing(key, value, obj)

    def remember(self, key: str, revision: int, obj: dict[str, Any]) -> None:
        """Called by the write path with the object as stored (resourceVersion set). The
        object is shared read-only with the response and every watcher."""
        if revision <= self.revision:  # its event came first: hand the object to it
            self.written.landed(key, obj)
            gp = key.split("/", 3)[2] if key.startswith(OBJECTS_PREFIX) else ""
            st = self.state.get(gp)
            entry = st.get(key) if st is not None else None
            if isinstance(entry, CachedEvent) and entry.revision == revision and entry._obj is None:
                entry._obj = obj
            return
        self.written.written(key, revision, obj)

    async def start(self) -> None:
        await self._load()
        self._task = asyncio.create_task(self._run(), name="watch-cache")
        self.ready.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        for ws in list(self.watchers.values()):
            for w in list(ws):
                w.close()

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                async for ev in self.store.watch(WATCH_PREFIX, self.revision):
                    if not ev.key.startswith(OBJECTS_PREFIX):
                        self._advance(ev.revision)  # not an API object: only the revision moves
                        continue
                    cev = CachedEvent(ev, self.written)
                    if cev.group_plural in self.sealed:
                        opened = self._open(cev.group_plural, ev)
                        if isinstance(opened, str):
                            if ev.type == "DELETED":
                                self._forget(cev)
                            else:
                                self.resource(cev.group_plural).put(Unreadable(ev, opened), cev.namespace)
                            self._advance(ev.revision)
                            continue
                        cev.raw = opened
                    self._ingest(cev)
                    delay = 0.05
            except asyncio.CancelledError:
                raise
            except CompactedError:
                # We fell behind the store's history: the ring has a gap. Start over from now;
                # every open watch ends and clients resume (or relist on 410).
                log.warning("watch cache fell behind compaction; resetting")
                with contextlib.suppress(StoreError, OSError):
                    await self._reset()
            except (StoreError, OSError) as exc:
                log.warning("store watch interrupted (%s); resuming from %d", exc, self.revision)
            except Exception:
                log.exception("store watch failed; resuming from %d", self.revision)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _open(self, group_plural: str, ev: WatchEvent) -> WatchEvent | str:
        """The event with its values decrypted, or why not (logged) when no configured key
        opens it: watchers miss that one event, and a read or list of the object answers 500
        naming the key."""
        t = self.sealed[group_plural]
        try:
            value = t.from_store(ev.key, ev.value)
        except Exception as exc:
            log.error("watch event %s %s at revision %d skipped: %s", ev.type, ev.key, ev.revision, exc)
            return str(exc)
        prev = None
        if ev.prev_value is not None:
            with contextlib.suppress(Exception):  # written with a key since dropped: no prev
                prev = t.from_store(ev.key, ev.prev_value)
        return WatchEvent(ev.type, ev.key, value, ev.revision, prev)

    async def _reset(self) -> None:
        for ws in list(self.watchers.values()):
            for w in list(ws):
                w.close()
        self.buffer.clear()
        await self._load()

    async def _load(self) -> None:
        """Every object and the revision they were read at, in one store snapshot."""
        kvs, rev = await self.store.list(OBJECTS_PREFIX)
        state: dict[str, ResourceState] = {}
        for kv in kvs:
            ev = self._loaded(kv)
            st = state.get(ev.group_plural)
            if st is None:
                st = state[ev.group_plural] = ResourceState(ev.group_plural)
            st.put(ev, ev.namespace)
        self.state = state
        self.revision = max(self.revision, rev)
        self.oldest = self.revision
        self._wake()

    def _loaded(self, kv: KeyValue) -> CachedEvent:
        ev = WatchEvent("ADDED", kv.key, kv.value, kv.mod_revision)
        cev = CachedEvent(ev, None)
        if cev.group_plural in self.sealed:
            opened = self._open(cev.group_plural, ev)
            if isinstance(opened, str):
                return Unreadable(ev, opened)
            cev.raw = opened
        return cev

    def _forget(self, ev: CachedEvent) -> None:
        st = self.state.get(ev.group_plural)
        if st is not None:
            st.remove(ev.key, ev.namespace)

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
            self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= self.revision:
            fut = heapq.heappop(waiters)[2]
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, revision: int) -> None:
        """Until the cache has seen ``revision`` (callers bound the wait)."""
        if self.revision >= revision:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (revision, next(self._seq), fut)
        heapq.heappush(self._waiters, entry)
        try:
            await fut
        finally:
            if not fut.done():  # given up (timeout, cancellation): leave the heap
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                    heapq.heapify(self._waiters)

    def resource(self, group_plural: str) -> ResourceState:
        """The current objects of a resource (an empty state if none was ever seen)."""
        st = self.state.get(group_plural)
        if st is None:
            st = self.state[group_plural] = ResourceState(group_plural)
        return st

    def changed_since(self, group_plural: str, revision: int) -> list[CachedEvent]:
        """The resource's events after ``revision`` (which must be >= ``oldest``)."""
        return [ev for ev in self._since(revision) if ev.group_plural == group_plural]

    def _ingest(self, ev: CachedEvent) -> None:
        if ev.revision <= self.revision:
            return  # already seen (a resumed store watch may repeat nothing, but be safe)
        if len(self.buffer) == self.buffer.maxlen:
            self.oldest = self.buffer[0].revision
        self.buffer.append(ev)
        self.revision = ev.revision
        st = self.resource(ev.group_plural)
        before = st.get(ev.key)
        if type(before) is CachedEvent:  # an Unreadable one has no object to be a prev
            ev.prev_revision = before.revision
            # One link only: the event before keeps no chain of older events alive (it
            # decodes its own prev, should a late watcher replaying the ring ask).
            before._before = None
            if ev.raw.prev_value is not None:
                ev._before = before
        if ev.type == "DELETED":
            st.remove(ev.key, ev.namespace)
        else:
            st.put(ev, ev.namespace)
        for w in list(self.watchers.get(ev.group_plural, ())):
            w.offer(ev)
        for listener in self.listeners:
            try:
                listener(ev)
            except Exception:
                log.exception("watch cache listener failed")
        if self._waiters:
            self._wake()

    def subscribe(self, group_plural: str, from_revision: int, filt: Filter) -> Watcher:
        """Register a watcher that gets every matching event after ``from_revision``."""
        if from_revision < self.oldest:
            raise TooOldError(from_revision, self.oldest)
        w = Watcher(self, group_plural, from_revision, filt)
        # Replay what the ring holds past from_revision, then go live: both happen in this
        # one synchronous step, so no event can slip between them.
        if self.buffer and self.buffer[-1].revision > from_revision:
            for ev in self._since(from_revision):
                if ev.group_plural == group_plural:
                    w.offer(ev)
        self.watchers.setdefault(group_plural, set()).add(w)
        return w

    def _since(self, revision: int) -> list[CachedEvent]:
        buf = self.buffer
        lo, hi = 0, len(buf)
        while lo < hi:  # deque supports O(1) indexing at the ends only, but this is rare
            mid = (lo + hi) // 2
            if buf[mid].revision <= revision:
                lo = mid + 1
            else:
                hi = mid
        return [buf[i] for i in range(lo, len(buf))]

    def modified_objects(self) -> list[str]:
        """``key@revision`` of the events whose decoded object no longer encodes to the value
        stored: someone modified an object that the cache shares with every watcher and
        in-process informer. Checked when a server stops with BOSUN_CHECK_SHARED_OBJECTS=1
        (the test suite sets it), because such a change would leak into later writes."""
        return [f"{ev.key}@{ev.revision}" for ev in self.buffer
                if ev._obj is not None and encode(ev._obj) != ev.raw.value]

    def unsubscribe(self, w: Watcher) -> None:
        ws = self.watchers.get(w.group_plural)
        if ws is not None:
            ws.discard(w)

