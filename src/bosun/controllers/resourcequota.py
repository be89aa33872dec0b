"""ResourceQuota controller: each quota's ``status.hard`` is its ``spec.hard`` and its
``status.used`` what its namespace holds, counted as the admission plugin charges it
(:mod:`bosun.api.quotausage`).

The admission plugin raises ``status.used`` as objects are created; this controller lowers it
again when they go (deletes, pods that finish) and recounts a quota whose ``spec.hard``
changed, plus every quota every ``RESYNC`` seconds, as upstream's replenishment does. It does
not recount on creates: a count taken while a charged object is still on its way to the store
(or to this controller's informer) would forget it and let the quota be overrun. For the same
reason a quota is not recounted until the informers have seen the quota's own last charge,
and the status is written with compare-and-swap on the quota's resourceVersion, so a charge
made meanwhile makes the write fail and the count start again. What stays open, as upstream:
a recount triggered by a delete can miss an object admitted in the milliseconds between its
charge and its store write; the next recount restores it.

Custom resources are counted as upstream's quota controller counts them, with informers made
as their kinds come: each Established CustomResourceDefinition (:mod:`bosun.controllers._kinds`)
gets an informer of this controller's own, stopped when the CRD goes, so a deleted custom
object gives its ``count/<resource>.<group>`` back. Until a kind's informer has listed, its
count stays as the admission charges made it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api import quotausage
from bosun.api.registry import Resource, find
from bosun.client.errors import ApiError
from bosun.client.informer import Informer
from bosun.component import ComponentContext
from bosun.controllers._common import PODS, Controller, Obj, key_of, resource, split_key
from bosun.controllers._kinds import ServedKinds

log = logging.getLogger(__name__)

QUOTAS = resource("", "v1", "resourcequotas")
# The kinds whose informers this controller keeps: those with a legacy quota name.
COUNTED = (PODS, resource("", "v1", "services"), resource("", "v1", "configmaps"),
           resource("", "v1", "secrets"), resource("", "v1", "persistentvolumeclaims"),
           resource("", "v1", "replicationcontrollers"), QUOTAS)
RESYNC = 300.0
CATCH_UP = 0.5  # seconds between looks at informers that have not seen a quota's last charge
CONFLICT_RETRIES = 5


def _rv(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _released(old: Obj, new: Obj) -> bool:
    """Whether an update may lower usage (a pod finished, a service changed type)."""
    return (quotausage.is_terminal(new) != quotausage.is_terminal(old)
            or (old.get("spec") or {}).get("type") != (new.get("spec") or {}).get("type"))


class ResourceQuotaController(Controller):
    """Keyed by quota (``ns/name``)."""

    name = "resourcequota"
    workers = 2

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.informers: dict[str, tuple[Resource, Informer]] = {}
        for res in COUNTED:
            inf = ctx.informers.get(res)
            self.informers[res.group_plural] = (res, inf)
            inf.add_handler(None, self._updated, self._namespace_changed)
        self.quotas = self.informers[QUOTAS.group_plural][1]
        self.quotas.add_handler(self.enqueue, self._quota_updated)
        self.custom: dict[str, Informer] = {}  # count/<resource>.<group> -> informer of a custom kind
        # Custom kinds whose CRD went: the CRD finalizer deleted all their objects first.
        self.gone: dict[str, Resource] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.kinds = ServedKinds(ctx)
        self.kinds.on_added.append(self._custom_added)
        self.kinds.on_removed.append(self._custom_removed)

    def _custom_added(self, res: Resource) -> None:
        """A CRD became Established: count its objects (namespaced kinds only, as quotas are)."""
        name = quotausage.count_name(res)
        if not res.namespaced or name in self.custom:
            return
        self.gone.pop(name, None)
        inf = Informer(self.client, res, shared_objects=self.ctx.informers.shared_objects)
        inf.add_handler(None, None, self._namespace_changed)
        self.custom[name] = inf
        self._spawn(self._follow(inf))

    def _custom_removed(self, res: Resource) -> None:
        name = quotausage.count_name(res)
        inf = self.custom.pop(name, None)
        if inf is not None:
            self.gone[name] = res
            self._spawn(inf.stop())
            self._enqueue_limiting(name)

    def _enqueue_limiting(self, name: str) -> None:
        self.enqueue_all(q for q in self.quotas.list() if name in ((q.get("spec") or {}).get("hard") or {}))

    async def _follow(self, inf: Informer) -> None:
        """Start the informer; once it has listed, recount the quotas that limit its kind."""
        await inf.start()
        try:
            await inf.wait_synced()
        except (TimeoutError, RuntimeError):
            return  # stopped before it listed: its CRD went meanwhile
        self._enqueue_limiting(quotausage.count_name(inf.resource))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _namespace_changed(self, obj: Obj) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns:
            self.enqueue_all(self.quotas.list(ns))

    def _updated(self, old: Obj, new: Obj) -> None:
        if _released(old, new):
            self._namespace_changed(new)

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        """Spec changes and quotas without a status; not the charges (see the module's doc)."""
        hard = (new.get("spec") or {}).get("hard")
        if (old.get("spec") or {}).get("hard") != hard or (new.get("status") or {}).get("hard") != hard:
            self.enqueue(new)

    async def run(self) -> None:
        resync = asyncio.create_task(self._resync_loop(), name="resourcequota-resync")
        try:
            await super().run()
        finally:
            await cancel_and_wait(resync)
            for task in list(self._tasks):
                await cancel_and_wait(task)
            for inf in list(self.custom.values()):
                await inf.stop()

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC)
            self.enqueue_all(self.quotas.list())

    def _caught_up(self, quota: Obj) -> bool:
        rv = _rv(quota["metadata"].get("resourceVersion"))
        custom = [inf for inf in self.custom.values() if inf.has_synced]
        return all(_rv(inf.last_resource_version) >= rv
                   for inf in [*(inf for _, inf in self.informers.values()), *custom])

    async def _objects(self, name: str, ns: str) -> tuple[Resource, list[Obj]] | None:
        """The objects a ``count/<resource>.<group>`` name counts (listed: no informer)."""
        inf = self.custom.get(name)
        if inf is not None:
            return (inf.resource, inf.list(ns)) if inf.has_synced else None
        if name in self.gone:
            return self.gone[name], []
        res = find(name.removeprefix("count/"))
        if res is None or not res.namespaced:
            return None
        if res.group_plural in self.informers:
            return res, self.informers[res.group_plural][1].list(ns)
        page = await self.client.list_all(res, ns)
        return res, page[0]

    async def used(self, quota: Obj) -> dict[str, Decimal]:
        """What the quota's namespace holds of each resource its spec limits."""
        ns = str(quota["metadata"]["namespace"])
        hard = quotausage.hard_of(quota)
        used = dict.fromkeys(hard, Decimal(0))
        sources: dict[str, tuple[Resource, list[Obj]]] = {}
        for res, inf in self.informers.values():
            sources[res.group_plural] = (res, inf.list(ns))
        for name in hard:
            if name.startswith("count/"):
                found = await self._objects(name, ns)
                if found is not None:
                    sources.setdefault(found[0].group_plural, found)
                else:  # a custom kind not listed yet (or gone): as the admission charges left it
                    used[name] = quotausage.hard_of(quota, "used", "status").get(name, Decimal(0))
        for res, objs in sources.values():
            for obj in objs:
                if quotausage.matches(quota, res, obj):
                    for k, v in quotausage.usage(res, obj).items():
                        if k in used:
                            used[k] += v
        return used

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        quota = self.quotas.get(ns, name)
        if quota is None:
            return
        for _ in range(CONFLICT_RETRIES):
            if (quota.get("status") or {}).get("used") is not None and not self._caught_up(quota):
                self.queue.add_after(key, CATCH_UP)
                return
            hard = dict((quota.get("spec") or {}).get("hard") or {})
            status = {"hard": hard, "used": quotausage.encode(await self.used(quota))}
            if quota.get("status") == status:
                return
            try:
                await self.client.update(QUOTAS, dict(quota, status=status), subresource="status")
                return
            except ApiError as exc:
                if exc.status == 404:
                    return
                if exc.status != 409:
                    raise
            try:
                quota = await self.client.get(QUOTAS, name, ns)
            except ApiError as exc:
                if exc.status == 404:
                    return
                raise
        self.queue.add_after(key_of(quota), CATCH_UP)


async def run(ctx: ComponentContext) -> None:
    await ResourceQuotaController(ctx).run()
