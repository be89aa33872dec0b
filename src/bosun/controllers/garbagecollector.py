"""Garbage collector: owner references, with background, foreground and orphan deletion.

Upstream's garbage collector, the same way: an informer of every kind the cluster serves
(built-in and custom, :mod:`bosun.controllers._kinds`) feeds a graph of owners and their
dependents, and a work queue acts on two sorts of keys:

- ``dependent/<uid>``: an object some of whose owners may be gone. It is deleted when all
  of them are (in Foreground when it has dependents of its own, so the cascade goes on),
  otherwise the references to the gone owners are dropped. The API is asked, not the
  graph, whether an owner exists: one created a moment ago may not be in the graph yet;
- ``owner/<uid>``: an object being deleted that carries a collector finalizer the API put
  on it. ``orphan``: its dependents lose their reference to it, then the finalizer goes.
  ``foregroundDeletion``: its dependents are deleted (each in Foreground) and the
  finalizer goes once none with ``blockOwnerDeletion`` is left; a dependent's DELETED event
  brings the owner back.

Every write goes through the client (authorization, admission, compare-and-swap), and it
runs under the control plane's Lease like every controller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bosun.api.registry import Resource
from bosun.client.errors import ApiError
from bosun.client.informer import Informer
from bosun.client.workqueue import run_workers
from bosun.component import ComponentContext
from bosun.controllers._common import Controller, Obj
from bosun.controllers._kinds import BUILTIN, ServedKinds

log = logging.getLogger(__name__)

GC_FINALIZERS = ("orphan", "foregroundDeletion")
SYNC_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Ref:
    res: Resource
    namespace: str | None
    name: str


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 16  # a cascade over thousands of pods is I/O-bound

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.kinds = ServedKinds(ctx)
        self.objects: dict[str, Ref] = {}  # uid -> where the object lives
        self.owners: dict[str, list[Obj]] = {}  # dependent uid -> its ownerReferences
        self.dependents: dict[str, set[str]] = {}  # owner uid -> dependent uids
        self.deleting: dict[str, list[str]] = {}  # owner uid -> collector finalizers still on it
        # Informers of the collector's own (not the shared ones): a kind that cannot be listed
        # (a Secret sealed with a key this server lacks) must hold up neither the collection of
        # every other kind nor the other controllers waiting for the shared informers to sync.
        self._builtin: dict[str, Informer] = {}
        self._custom: dict[str, Informer] = {}  # group_plural -> informer of a custom kind
        self._tasks: set[asyncio.Task[None]] = set()
        for res in BUILTIN:
            inf = self._builtin[res.group_plural] = Informer(self.client, res,
                                                             shared_objects=ctx.informers.shared_objects)
            self._follow(inf, res)
        self.kinds.on_added.append(self._custom_added)
        self.kinds.on_removed.append(self._custom_removed)

    # ---- informers --------------------------------------------------------------------

    def _follow(self, inf: Informer, res: Resource) -> None:
        inf.add_handler(lambda o: self._index(res, o), lambda _o, n: self._index(res, n), self._forget)

    def _custom_added(self, res: Resource) -> None:
        """A CRD became Established: follow its kind (an informer of the collector's own,
        stopped when the CRD goes)."""
        if res.group_plural in self._custom:
            return
        inf = Informer(self.client, res, shared_objects=self.ctx.informers.shared_objects)
        self._follow(inf, res)
        self._custom[res.group_plural] = inf
        self._spawn(inf.start())

    def _custom_removed(self, res: Resource) -> None:
        inf = self._custom.pop(res.group_plural, None)
        if inf is not None:
            self._spawn(inf.stop())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        try:
            for inf in self._builtin.values():
                await inf.start()
            await self.ctx.informers.start()  # the CRDs
            synced = await asyncio.gather(*(inf.wait_synced(SYNC_SECONDS) for inf in self._builtin.values()),
                                          return_exceptions=True)
            for inf, ok in zip(self._builtin.values(), synced, strict=True):
                if isinstance(ok, BaseException):
                    log.error("garbage collector: cannot list %s yet; its owner references are followed once "
                              "it can: %s", inf.resource.group_plural, ok or "timed out")
            await run_workers(self.queue, self.reconcile, self.workers)
        finally:
            self.queue.shutdown()
            for inf in [*self._builtin.values(), *self._custom.values()]:
                await inf.stop()

    # ---- the graph --------------------------------------------------------------------

    def _index(self, res: Resource, obj: Obj) -> None:
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
                self.queue.add(f"dependent/{uid}")
        else:
            self.owners.pop(uid, None)
        gc_finalizers = [f for f in m.get("finalizers") or [] if f in GC_FINALIZERS]
        if m.get("deletionTimestamp") and gc_finalizers:
            self.deleting[uid] = gc_finalizers
            self.queue.add(f"owner/{uid}")
        else:
            self.deleting.pop(uid, None)

    def _forget(self, obj: Obj) -> None:
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
                    self.queue.add(f"owner/{ref['uid']}")  # a foreground owner may be done now
        for dep in self.dependents.pop(uid, set()):
            self.queue.add(f"dependent/{dep}")

    # ---- the work ---------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        what, _, uid = key.partition("/")
        if what == "owner":
            await self._owner(uid)
        else:
            await self._dependent(uid)

    async def _owner_exists(self, dep_ns: str | None, ref: Obj) -> bool:
        res = self.kinds.by_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        if res is None:
            return ref.get("uid") in self.objects
        try:
            owner = await self.client.get(res, str(ref.get("name", "")), dep_ns if res.namespaced else None)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return bool((owner.get("metadata") or {}).get("uid") == ref.get("uid"))

    async def _dependent(self, uid: str) -> None:
        """Delete a dependent whose owners are all gone; drop references to owners that are."""
        where = self.objects.get(uid)
        refs = self.owners.get(uid)
        if where is None or not refs:
            return
        gone = [r for r in refs if not await self._owner_exists(where.namespace, r)]
        if not gone:
            return
        if len(gone) == len(refs):
            policy = "Foreground" if self.dependents.get(uid) else "Background"
            await self._delete(where, uid, policy)
            return
        gone_uids = {r["uid"] for r in gone}
        await self._edit_list(where, uid, "ownerReferences", lambda r: r.get("uid") not in gone_uids)

    async def _owner(self, uid: str) -> None:
        """Finish an owner's orphan or foreground deletion."""
        where = self.objects.get(uid)
        finalizers = self.deleting.get(uid)
        if where is None or not finalizers:
            return
        deps = [(d, self.objects[d]) for d in list(self.dependents.get(uid, ())) if d in self.objects]
        if "orphan" in finalizers:
            for dep_uid, dep in deps:
                await self._edit_list(dep, dep_uid, "ownerReferences", lambda r: r.get("uid") != uid)
            await self._edit_list(where, uid, "finalizers", lambda f: f != "orphan")
            return
        # foregroundDeletion: delete the dependents, and let the owner go once those that block
        # it (blockOwnerDeletion) are gone; the others follow it as any orphan does.
        for dep_uid, dep in deps:
            await self._delete(dep, dep_uid, "Foreground")
        if not any(self._blocks(dep_uid, uid) for dep_uid, _ in deps):
            await self._edit_list(where, uid, "finalizers", lambda f: f != "foregroundDeletion")

    def _blocks(self, dep_uid: str, owner_uid: str) -> bool:
        return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") is True
                   for r in self.owners.get(dep_uid, ()))

    async def _delete(self, where: Ref, uid: str, policy: str) -> None:
        try:
            await self.client.delete(where.res, where.name, where.namespace, propagation_policy=policy,
                                     preconditions={"uid": uid})
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone, or a namesake made since
                raise

    async def _edit_list(self, where: Ref, uid: str, field: str, keep: Callable[[Any], bool]) -> None:
        """Keep the items of ``metadata.<field>`` that ``keep`` accepts (a JSON patch tested
        against the object's uid and resourceVersion: nobody else's change is lost); an
        object gone meanwhile is fine, a conflict is retried by the queue."""
        try:
            obj = await self.client.get(where.res, where.name, where.namespace)
        except ApiError as exc:
            if exc.status == 404:
                return
            raise
        m = obj.get("metadata") or {}
        if m.get("uid") != uid:
            return
        items = list(m.get(field) or [])
        rest = [item for item in items if keep(item)]
        if rest == items:
            return
        ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": uid},
                          {"op": "test", "path": "/metadata/resourceVersion", "value": m.get("resourceVersion")}]
        ops.append({"op": "replace", "path": f"/metadata/{field}", "value": rest} if rest
                   else {"op": "remove", "path": f"/metadata/{field}"})
        try:
            await self.client.patch(where.res, where.name, ops, where.namespace, patch_type="json")
        except ApiError as exc:
            if exc.status != 404:
                raise


async def run(ctx: ComponentContext) -> None:
    await GarbageCollector(ctx).run()
