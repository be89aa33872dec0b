"""Garbage collection by owner references: background, foreground and orphan deletion.

Kubernetes runs this in the controller manager. It is part of `bosun server` from the
start because deletion with ``propagationPolicy`` only finishes when someone honours the
``orphan`` and ``foregroundDeletion`` finalizers the API puts on the owner. It works from
the API server's watch cache (no polling) and writes through :class:`Storage`, so every
write has the API's semantics (validation, optimistic concurrency, finalizers). In a
control plane it runs only in the server that holds the `bosun-controlplane` Lease
(:meth:`bosun.api.server.APIServer.start_collectors`), so servers sharing etcd do not race.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.errors import APIError
from bosun.api.registry import STORED, Resource, by_kind
from bosun.api.storage import Storage
from bosun.api.watchcache import CachedEvent

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
WORKERS = 32
INDEX_DELAY = 0.005
_BY_GROUP_PLURAL: dict[str, Resource] = {r.group_plural: r for r in STORED}


@dataclass(frozen=True, slots=True)
class Ref:
    res: Resource
    namespace: str | None
    name: str


class GarbageCollector:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.objects: dict[str, Ref] = {}  # uid -> where the object lives
        self.owners: dict[str, list[dict[str, Any]]] = {}  # dependent uid -> its ownerReferences
        self.dependents: dict[str, set[str]] = {}  # owner uid -> dependent uids
        self.deleting: dict[str, list[str]] = {}  # owner uid -> GC finalizers still on it
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.pending: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._backlog: list[CachedEvent] = []
        # Writes made (deletions, owner references and finalizers dropped): shows which of
        # several servers does the work.
        self.actions = 0

    async def start(self) -> None:
        for res in STORED:
            try:
                items, _, _ = await self.storage.list(res, None)
            except APIError as exc:
                if exc.code != 500:
                    raise
                # e.g. a Secret sealed with a key this server lacks: collect everything else.
                log.error("garbage collector: cannot list %s, its owner references are not followed "
                          "until they are written again: %s", res.group_plural, exc.message)
                continue
            for obj in items:
                self._index(res, obj)
        for uid in list(self.deleting):
            self._enqueue("owner", uid)
        for uid, refs in self.owners.items():
            if any(r.get("uid") not in self.objects for r in refs):
                self._enqueue("dependent", uid)
        self._task = asyncio.create_task(self._run(), name="garbage-collector")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        for task in list(self._workers):
            await cancel_and_wait(task)

    # ---- the index, kept from the watch cache -----------------------------------------

    def observe(self, ev: CachedEvent) -> None:
        """Index events a few milliseconds late, in batches: by then the write path has handed
        over the objects it wrote, so most events need no decoding here."""
        if ev.group_plural not in _BY_GROUP_PLURAL:
            return
        self._backlog.append(ev)
        if len(self._backlog) == 1:
            asyncio.get_running_loop().call_later(INDEX_DELAY, self._drain)

    def _drain(self) -> None:
        backlog, self._backlog = self._backlog, []
        for ev in backlog:
            res = _BY_GROUP_PLURAL[ev.group_plural]
            if ev.type == "DELETED":
                self._forget(ev.obj)
            else:
                self._index(res, ev.obj)

    def _index(self, res: Resource, obj: dict[str, Any]) -> None:
        m = obj.get("metadata") or {}
        uid = m.get("uid")
        if not uid:
            return
        raw_refs = m.get("ownerReferences")
        if uid in self.objects and not m.get("deletionTimestamp") and uid not in self.deleting:
            # Most events are status writes: nothing the collector looks at has changed.
            if not raw_refs and uid not in self.owners:
                return
            known = self.owners.get(uid)
            if known is not None and raw_refs == known and all(r["uid"] in self.objects for r in known):
                return
        self.objects[uid] = Ref(res, m.get("namespace") if res.namespaced else None, m.get("name", ""))
        refs = [r for r in raw_refs or [] if isinstance(r, dict) and r.get("uid")]
        old = {r["uid"] for r in self.owners.get(uid, [])}
        new = {r["uid"] for r in refs}
        for gone in old - new:
            self.dependents.get(gone, set()).discard(uid)
        for owner in new:
            self.dependents.setdefault(owner, set()).add(uid)
        if refs:
            self.owners[uid] = refs
            if any(r["uid"] not in self.objects for r in refs):
                self._enqueue("dependent", uid)
        else:
            self.owners.pop(uid, None)
        gc_finalizers = [f for f in m.get("finalizers") or [] if f in ("orphan", "foregroundDeletion")]
        if m.get("deletionTimestamp") and gc_finalizers:
            self.deleting[uid] = gc_finalizers
            self._enqueue("owner", uid)
        else:
            self.deleting.pop(uid, None)

    def _forget(self, obj: dict[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        if not uid:
            return
        self.objects.pop(uid, None)
        self.deleting.pop(uid, None)
        for ref in self.owners.pop(uid, []):
            deps = self.dependents.get(ref["uid"])
            if deps is not None:
                deps.discard(uid)
                if ref["uid"] in self.deleting:
                    self._enqueue("owner", ref["uid"])  # a foreground owner may be done now
        for dep in self.dependents.pop(uid, set()):
            self._enqueue("dependent", dep)

    def _enqueue(self, what: str, uid: str) -> None:
        item = (what, uid)
        if item not in self.pending:
            self.pending.add(item)
            self.queue.put_nowait(item)

    # ---- the work ---------------------------------------------------------------------

    async def _run(self) -> None:
        """Up to WORKERS items at once: a cascade over thousands of pods is I/O-bound."""
        running = self._workers
        while True:
            item = await self.queue.get()
            self.pending.discard(item)
            while len(running) >= WORKERS:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(self._work(*item))
            running.add(task)
            task.add_done_callback(running.discard)

    async def _work(self, what: str, uid: str) -> None:
        try:
            done = await (self._owner(uid) if what == "owner" else self._dependent(uid))
        except Exception as exc:  # the store may be away: try again later
            log.warning("garbage collection of %s %s failed: %s", what, uid, exc)
            done = False
        if not done:
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self._enqueue, what, uid)

    async def _owner_exists(self, dep_ns: str | None, ref: dict[str, Any]) -> bool:
        """Ask the store, not the index: an owner created a moment ago may not be indexed yet."""
        res = by_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        if res is None:
            return ref.get("uid") in self.objects
        try:
            owner = await self.storage.get(res, dep_ns if res.namespaced else None, str(ref.get("name", "")))
        except APIError as exc:
            if exc.code == 404:
                return False
            raise
        return bool(owner["metadata"].get("uid") == ref.get("uid"))

    async def _dependent(self, uid: str) -> bool:
        """Delete a dependent whose owners are all gone; drop references to owners that are."""
        where = self.objects.get(uid)
        refs = self.owners.get(uid)
        if where is None or not refs:
            return True
        gone = [r for r in refs if not await self._owner_exists(where.namespace, r)]
        if not gone:
            return True
        if len(gone) == len(refs):
            policy = "Foreground" if self.dependents.get(uid) else "Background"
            with contextlib.suppress(APIError):
                await self.storage.delete(where.res, where.namespace, where.name,
                                          options={"propagationPolicy": policy})
                self.actions += 1
            return True
        gone_uids = {r["uid"] for r in gone}
        await self._drop_refs(where, gone_uids)
        return True

    async def _owner(self, uid: str) -> bool:
        """Finish an owner's orphan or foreground deletion."""
        where = self.objects.get(uid)
        finalizers = self.deleting.get(uid)
        if where is None or not finalizers:
            return True
        deps = [self.objects[d] for d in self.dependents.get(uid, set()) if d in self.objects]
        if "orphan" in finalizers:
            for dep in deps:
                await self._drop_refs(dep, {uid})
            await self._remove_finalizer(where, "orphan")
            return True
        # foregroundDeletion: delete the dependents, and let the owner go once they are gone.
        for dep in deps:
            with contextlib.suppress(APIError):
                await self.storage.delete(dep.res, dep.namespace, dep.name,
                                          options={"propagationPolicy": "Foreground"})
                self.actions += 1
        if deps:
            return True  # their DELETED events bring the owner back here
        await self._remove_finalizer(where, "foregroundDeletion")
        return True

    async def _drop_refs(self, where: Ref, uids: set[str]) -> None:
        await self._filter_meta_list(where, "ownerReferences", lambda r: r.get("uid") not in uids)

    async def _remove_finalizer(self, where: Ref, finalizer: str) -> None:
        await self._filter_meta_list(where, "finalizers", lambda f: f != finalizer)

    async def _filter_meta_list(self, where: Ref, field: str, keep: Callable[[Any], bool]) -> None:
        """Keep the items of ``metadata.<field>`` that ``keep`` accepts, dropping the field
        once empty (as the API leaves an empty list out); an object gone meanwhile is fine."""
        def fn(obj: dict[str, Any]) -> dict[str, Any]:
            m = obj["metadata"]
            rest = [item for item in m.get(field) or [] if keep(item)]
            if rest:
                m[field] = rest
            else:
                m.pop(field, None)
            return obj

        with contextlib.suppress(APIError):
            await self.storage.mutate(where.res, where.namespace, where.name, fn)
            self.actions += 1
