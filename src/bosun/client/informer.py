"""List + watch one resource into an indexed local cache (Kubernetes' SharedInformer).

Controllers read from this cache instead of the API server, and react to its handlers. The
informer's promise: after ``wait_synced`` the cache holds every object, and from then on
handlers see every change exactly once and in order, across dropped connections (re-watch
from the last resourceVersion) and expired history (relist, then emit the difference).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bosun.api.kinds import Kind
from bosun.client.rest import TRANSPORT_ERRORS, ApiError, Client

log = logging.getLogger(__name__)

Obj = dict[str, Any]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
IndexFunc = Callable[[Obj], list[str]]
# Spelled here once: inside Informer, `list` names the method.
ObjList = list[Obj]
StrList = list[str]


def object_key(obj: Obj) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = str(meta.get("name") or "")
    return f"{ns}/{name}" if ns else name


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


@dataclass(slots=True)
class _Handlers:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


class Informer:
    """Keeps a live, indexed copy of one resource (optionally one namespace / selector)."""

    def __init__(
        self,
        client: Client,
        resource: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        watch_timeout: tuple[int, int] = (300, 600),
        page_size: int = 500,
        shared_objects: bool = False,
    ) -> None:
        self.client = client
        # Watch events carry the API server's own objects when it runs in this process
        # (Client.watch): every handler must then treat objects as read-only, as client-go's
        # informer contract already asks.
        self.shared_objects = shared_objects
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        # The server is asked to end each watch after a random time in this range so that
        # connections are renewed (and load spreads) like client-go's reflector does.
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.has_synced = False
        self.last_resource_version = ""
        self.lists = 0  # how many times the informer listed (1 + relists); useful to observe
        self._items: dict[str, Obj] = {}
        self._handlers: list[_Handlers] = []
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None

    # -- configuration ----------------------------------------------------------------------

    def add_handler(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers; one added after sync first gets ``on_add`` for every cached object."""
        h = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(h)
        if self.has_synced and on_add is not None:
            for obj in list(self._items.values()):
                self._call(on_add, obj)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        self._index_funcs[name] = fn
        index: dict[str, set[str]] = {}
        self._indexes[name] = index
        for key, obj in self._items.items():
            for value in self._index_values(fn, obj):
                index.setdefault(value, set()).add(key)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.resource.plural}")
            if self.resync_period:
                self._resync_task = asyncio.create_task(self._resync_loop())

    async def wait_synced(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Return once the first list is in the cache; TimeoutError otherwise."""
        waiter = asyncio.ensure_future(self._synced.wait())
        watched: set[asyncio.Future[Any]] = {waiter}
        if self._task is not None:
            watched.add(self._task)
        try:
            done, _ = await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._synced.is_set():
            return
        if self._task is not None and self._task in done:
            self._task.result()  # surface why the informer died
            raise RuntimeError("informer stopped before it synced")
        raise TimeoutError(f"informer for {self.resource.plural} did not sync within {timeout}s")

    async def stop(self) -> None:
        """Stop watching; the cache stays readable and ``start`` resumes from it."""
        for task in (self._task, self._resync_task):
            if task is not None:
                task.cancel()
        for task in (self._task, self._resync_task):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._task = self._resync_task = None

    # -- reading the cache ------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self, namespace: str | None = None) -> ObjList:
        if namespace is None:
            return list(self._items.values())
        prefix = f"{namespace}/"
        return [o for k, o in self._items.items() if k.startswith(prefix)]

    def keys(self) -> StrList:
        return list(self._items)

    def by_index(self, name: str, value: str) -> ObjList:
        keys = self._indexes[name].get(value, ())
        return [self._items[k] for k in keys if k in self._items]

    # -- the reflector loop -----------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        # Restarted after stop(): resume the watch from where the cache is; history that has
        # expired meanwhile answers 410 and the relist below reconciles the cache.
        need_list = not (self.has_synced and self.last_resource_version)
        while True:
            listed = False
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    listed = True
                await self._watch_once()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status == 410:
                    log.info("%s: watch history expired (%s); relisting", self.resource.plural, e)
                    need_list = True
                    if not listed:
                        continue
                    # Gone right after a fresh list: relisting at once would spin; back off.
                log.warning("%s: list/watch failed: %s %s", self.resource.plural, e.status, e)
            except TRANSPORT_ERRORS as e:
                log.warning("%s: connection to API server failed: %r", self.resource.plural, e)
            except Exception:
                log.exception("%s: unexpected informer error", self.resource.plural)
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 10.0)

    async def _list(self) -> None:
        items, rv = await self.client.list_all(
            self.resource, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, page_size=self.page_size,
        )
        self.lists += 1
        self._replace(items)
        self.last_resource_version = rv
        if not self.has_synced:
            self.has_synced = True
            self._synced.set()

    async def _watch_once(self) -> None:
        """Follow one watch connection until the server ends it."""
        low, high = self.watch_timeout
        async for event in self.client.watch(
            self.resource, self.namespace, resource_version=self.last_resource_version or None,
            label_selector=self.label_selector, field_selector=self.field_selector,
            timeout_seconds=random.randint(low, high) if high > 0 else None,
            shared_objects=self.shared_objects,
        ):
            self._apply(event)

    def _apply(self, event: Obj) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self.last_resource_version = rv
            return
        key = object_key(obj)
        old = self._items.get(key)
        if kind in ("ADDED", "MODIFIED"):
            if old is not None and rv and _rv(old) == rv:
                return  # already seen (e.g. re-delivered after a reconnect)
            self._store(key, obj)
            if old is None:
                self._emit_add(obj)
            else:
                self._emit_update(old, obj)
        elif kind == "DELETED":
            if old is not None:
                self._remove(key)
                self._emit_delete(obj)
        else:
            log.warning("%s: unknown watch event type %r", self.resource.plural, kind)
            return
        if rv:
            self.last_resource_version = rv

    def _replace(self, items: ObjList) -> None:
        """Swap in a fresh list and tell handlers what changed since the cache's last state."""
        fresh = {object_key(o): o for o in items}
        for key, old in list(self._items.items()):
            if key not in fresh:
                self._remove(key)
                self._emit_delete(old)
        for key, obj in fresh.items():
            previous = self._items.get(key)
            if previous is None:
                self._store(key, obj)
                self._emit_add(obj)
            elif _rv(previous) != _rv(obj):
                self._store(key, obj)
                self._emit_update(previous, obj)

    async def _resync_loop(self) -> None:
        """Periodically replay every cached object as an update so controllers re-check it."""
        assert self.resync_period
        while True:
            await asyncio.sleep(self.resync_period)
            if self.has_synced:
                for obj in list(self._items.values()):
                    self._emit_update(obj, obj)

    # -- cache + index bookkeeping ----------------------------------------------------------

    @staticmethod
    def _index_values(fn: IndexFunc, obj: Obj) -> StrList:
        try:
            return list(fn(obj))
        except Exception:
            log.exception("index function failed on %s", object_key(obj))
            return []

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indexes[name]
            for value in self._index_values(fn, obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def _store(self, key: str, obj: Obj) -> None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._index_funcs.items():
            for value in self._index_values(fn, obj):
                self._indexes[name].setdefault(value, set()).add(key)

    def _remove(self, key: str) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)

    # -- handlers ---------------------------------------------------------------------------

    @staticmethod
    def _call(fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer handler %r failed", getattr(fn, "__qualname__", fn))

    def _emit_add(self, obj: Obj) -> None:
        for h in list(self._handlers):
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _emit_update(self, old: Obj, new: Obj) -> None:
        for h in list(self._handlers):
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _emit_delete(self, obj: Obj) -> None:
        for h in list(self._handlers):
            if h.on_delete is not None:
                self._call(h.on_delete, obj)
