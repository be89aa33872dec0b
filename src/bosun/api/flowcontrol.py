"""API Priority and Fairness' objects (flowcontrol.apiserver.k8s.io/v1), kept as upstream keeps
them: the mandatory PriorityLevelConfigurations and FlowSchemas (``exempt`` and
``catch-all``) are created at start and whenever they are deleted, the suggested ones
(:mod:`bosun.api.apf.bootstrap`) at start when missing; all are put back to their fixed spec
while they carry ``apf.kubernetes.io/autoupdate-spec: "true"``; every FlowSchema's
``Dangling`` condition says whether the priority level it names exists; and the process's
dispatcher (:mod:`bosun.api.apf`) is given the objects each time they change.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import TYPE_CHECKING, Any

from bosun.aio import cancel_and_wait
from bosun.api.apf.bootstrap import (
    AUTOUPDATE,
    GROUP,
    mandatory_flow_schemas,
    mandatory_priority_levels,
    suggested_flow_schemas,
    suggested_priority_levels,
)
from bosun.api.apf.dispatcher import Dispatcher
from bosun.api.errors import APIError
from bosun.api.objects import now_rfc3339
from bosun.api.registry import must_by_plural

if TYPE_CHECKING:
    from bosun.api.storage import Storage
    from bosun.api.watchcache import CachedEvent, WatchCache

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FLOW_SCHEMAS = must_by_plural(GROUP, "v1", "flowschemas")
PRIORITY_LEVELS = must_by_plural(GROUP, "v1", "prioritylevelconfigurations")
DANGLING = "Dangling"


def dangling_condition(schema: Obj, levels: set[str]) -> Obj:
    """The ``Dangling`` condition ``schema`` should carry (without its transition time)."""
    name = str(((schema.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name") or "")
    if name in levels:
        return {"type": DANGLING, "status": "False", "reason": "Found",
                "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{name}" '
                           "and it exists"}
    return {"type": DANGLING, "status": "True", "reason": "NotFound",
            "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{name}" '
                       "but there is no such object"}


def with_condition(schema: Obj, want: Obj) -> Obj | None:
    """``schema`` with its Dangling condition set to ``want`` (None: it is already)."""
    conditions = list((schema.get("status") or {}).get("conditions") or [])
    for i, have in enumerate(conditions):
        if isinstance(have, dict) and have.get("type") == DANGLING:
            if all(have.get(k) == v for k, v in want.items()):
                return None
            changed = have.get("status") != want["status"]
            conditions[i] = dict(want, lastTransitionTime=now_rfc3339() if changed or not have.get(
                "lastTransitionTime") else have["lastTransitionTime"])
            break
    else:
        conditions.append(dict(want, lastTransitionTime=now_rfc3339()))
    out = dict(schema, status=dict(schema.get("status") or {}, conditions=conditions))
    return out


class FlowControl:
    """The mandatory and suggested objects at start, the FlowSchemas' conditions and the
    dispatcher's configuration while the server runs."""

    def __init__(self, storage: Storage, dispatcher: Dispatcher | None = None) -> None:
        self.storage = storage
        self.dispatcher = dispatcher
        self.cache: WatchCache | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False

    async def start(self, cache: WatchCache) -> None:
        self.cache = cache
        cache.listeners.append(self.observe)
        await self._ensure(suggested=True)
        await self._reconcile()

    async def stop(self) -> None:
        if self.cache is not None:
            with contextlib.suppress(ValueError):
                self.cache.listeners.remove(self.observe)
        await cancel_and_wait(self._task)

    def observe(self, ev: CachedEvent) -> None:
        if ev.group_plural in (FLOW_SCHEMAS.group_plural, PRIORITY_LEVELS.group_plural):
            self._again = True
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._reconcile_soon())

    async def _reconcile_soon(self) -> None:
        while self._again:
            self._again = False
            await asyncio.sleep(0.05)  # let a burst of writes (kubectl apply -f dir) land first
            await self._ensure(suggested=False)
            await self._reconcile()

    async def _ensure(self, suggested: bool) -> None:
        """The mandatory objects, made again when missing; the suggested ones made when
        missing at start only (deleting one is the administrator's choice, as upstream)."""
        wanted = [(PRIORITY_LEVELS, o, True) for o in mandatory_priority_levels()]
        wanted += [(PRIORITY_LEVELS, o, suggested) for o in suggested_priority_levels()]
        wanted += [(FLOW_SCHEMAS, o, True) for o in mandatory_flow_schemas()]
        wanted += [(FLOW_SCHEMAS, o, suggested) for o in suggested_flow_schemas()]
        for res, want, create in wanted:
            name = want["metadata"]["name"]
            try:
                have = await self.storage.get(res, None, name)
            except APIError as exc:
                if exc.code != 404:
                    raise
                if create:
                    with contextlib.suppress(APIError):  # another server made it first
                        await self.storage.create(res, None, copy.deepcopy(want))
                continue
            if (have["metadata"].get("annotations") or {}).get(AUTOUPDATE) != "true":
                continue
            res.strategy.default(res, want)
            if have.get("spec") != want["spec"]:
                with contextlib.suppress(APIError):
                    await self.storage.update(res, None, name, dict(have, spec=want["spec"]))

    async def _reconcile(self) -> None:
        """Write each FlowSchema's Dangling condition where it is not what it should be."""
        levels_list, _, _ = await self.storage.list(PRIORITY_LEVELS, None)
        levels = {o["metadata"]["name"] for o in levels_list}
        schemas, _, _ = await self.storage.list(FLOW_SCHEMAS, None)
        if self.dispatcher is not None:
            self.dispatcher.configure(schemas, levels_list)
        for schema in schemas:
            want = dangling_condition(schema, levels)
            if with_condition(schema, want) is None:
                continue

            def put(current: Obj, want: Obj = want) -> Obj:
                return with_condition(current, want) or current
            try:
                await self.storage.mutate(FLOW_SCHEMAS, None, schema["metadata"]["name"], put, subresource="status")
            except APIError as exc:
                if exc.code != 404:
                    log.warning("could not set the conditions of FlowSchema %s: %s",
                                schema["metadata"]["name"], exc)
