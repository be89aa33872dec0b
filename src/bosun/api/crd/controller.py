"""CustomResourceDefinitions brought to life: named, established, served, and cleaned up.

Kubernetes splits this over apiextensions-apiserver's naming, establishing and finalizing
controllers; here one small controller per API server does the three, because each server
must serve what its store's CRDs define:

- every CRD event from the watch cache updates the server's :class:`~bosun.api.catalog.Catalog`
  at once: a CRD whose ``Established`` condition is True is served (one registry row per
  served version, with :class:`~bosun.api.crd.version.CustomVersion` as strategy), a deleted
  one no longer is. Every server of a store follows the same events, so they agree;
- a CRD whose names are free gets ``NamesAccepted`` and ``Established`` (status writes are
  idempotent, so several servers doing it is harmless); names already in use get
  ``NamesAccepted=False`` saying which;
- a CRD being deleted gets ``Terminating``; every object of its kind is deleted (objects
  with finalizers are waited for, as their owners remove them), then the cleanup finalizer
  is removed and the CRD goes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.catalog import Catalog
from bosun.api.crd.version import CustomVersion
from bosun.api.errors import APIError
from bosun.api.registry import Resource, must_by_plural
from bosun.api.storage import Storage
from bosun.api.strategy.apiextensions import CLEANUP_FINALIZER
from bosun.api.watchcache import CachedEvent

log = logging.getLogger(__name__)

CRDS = must_by_plural("apiextensions.k8s.io", "v1", "customresourcedefinitions")
RETRY_SECONDS = 0.5
_VERBS: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
Obj = dict[str, Any]


def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def condition(crd: Obj, typ: str) -> Obj:
    for c in _d(crd.get("status")).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == typ:
            return c
    return {}


def rows_of(crd: Obj) -> tuple[Resource, ...]:
    """The registry rows a CRD's served versions make."""
    spec = _d(crd.get("spec"))
    names = _d(spec.get("names"))
    group, kind, plural = str(spec.get("group")), str(names.get("kind")), str(names.get("plural"))
    verbs = _VERBS
    if _d(crd.get("metadata")).get("deletionTimestamp"):
        verbs = tuple(v for v in _VERBS if v != "create")  # its objects are being deleted
    rows = []
    for v in spec.get("versions") or []:
        if not isinstance(v, dict) or v.get("served") is not True:
            continue
        subs = _d(v.get("subresources"))
        strategy = CustomVersion(_d(_d(v.get("schema")).get("openAPIV3Schema")), v)
        rows.append(Resource(
            group, str(v.get("name")), kind, plural, spec.get("scope") == "Namespaced",
            tuple(names.get("shortNames") or ()), tuple(names.get("categories") or ()),
            subresources=tuple(s for s in ("status", "scale") if s in subs),
            list_kind=str(names.get("listKind") or f"{kind}List"), strategy=strategy, custom=strategy, verbs=verbs,
        ))
    return tuple(rows)


Claim = tuple[str, tuple[str, ...], tuple[str, ...]]  # group, resource names, kinds


def _claim(crd: Obj) -> Claim:
    spec = _d(crd.get("spec"))
    names = _d(spec.get("names"))
    words = (names.get("plural"), names.get("singular"), *(names.get("shortNames") or []))
    return (str(spec.get("group")), tuple(str(w) for w in words if w),
            tuple(str(k) for k in (names.get("kind"), names.get("listKind")) if k))


def _conflict(catalog: Catalog, crd: Obj, claims: dict[str, Claim] | None = None) -> str:
    """Why a CRD's names cannot be accepted ("" when they can): names of a served resource,
    or claimed by another CRD this controller accepted a moment ago (not served yet)."""
    spec = _d(crd.get("spec"))
    names = _d(spec.get("names"))
    own = str(_d(crd.get("metadata")).get("name"))
    group, words, kinds = _claim(crd)
    for other, (g, w, k) in (claims or {}).items():
        if other != own and g == group:
            taken = [x for x in words if x in w] or [x for x in kinds if x in k]
            if taken:
                return f'"{taken[0]}" is already in use'
    mine = {names.get("plural"), names.get("singular"), *(names.get("shortNames") or [])}
    for r in catalog.resources():
        if r.group != spec.get("group") or r in catalog.custom(own):
            continue
        if r.plural in mine or r.singular in mine or mine & set(r.short_names):
            taken = next(n for n in (names.get("plural"), names.get("singular"), *(names.get("shortNames") or []))
                         if n in (r.plural, r.singular, *r.short_names))
            return f'"{taken}" is already in use'
        if r.kind in (names.get("kind"), names.get("listKind")):
            return f'"{r.kind}" is already in use'
    return ""


def _cond(typ: str, ok: bool, reason: str, message: str, old: Obj) -> Obj:
    status = "True" if ok else "False"
    when = old.get("lastTransitionTime") if old.get("status") == status else None
    return {"type": typ, "status": status,
            "lastTransitionTime": when or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": reason, "message": message}


def wanted_status(crd: Obj, conflict: str) -> Obj:
    """The status the controller gives a live CRD."""
    spec = _d(crd.get("spec"))
    status = _d(crd.get("status"))
    accepted = not conflict
    conds = [_cond("NamesAccepted", accepted, "NoConflicts" if accepted else "NameConflict",
                   "no conflicts found" if accepted else conflict, condition(crd, "NamesAccepted"))]
    established = accepted or condition(crd, "Established").get("status") == "True"
    conds.append(_cond("Established", established, "InitialNamesAccepted" if established else "NotAccepted",
                       "the initial names have been accepted" if established else "not all names are accepted",
                       condition(crd, "Established")))
    stored = list(status.get("storedVersions") or [])
    for v in spec.get("versions") or []:
        if isinstance(v, dict) and v.get("storage") is True and v.get("name") not in stored:
            stored.append(v.get("name"))
    names = dict(_d(spec.get("names"))) if accepted else _d(status.get("acceptedNames"))
    return {"acceptedNames": names or {"kind": "", "plural": ""}, "conditions": conds, "storedVersions": stored}


class DefinitionController:
    def __init__(self, storage: Storage, catalog: Catalog) -> None:
        self.storage = storage
        self.catalog = catalog
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.pending: set[str] = set()
        self.known: set[str] = set()  # every CRD of the store, served or not
        self.claims: dict[str, Claim] = {}  # the names of the CRDs this controller accepted
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve the store's Established CRDs now (before the server answers requests)."""
        items, _, _ = await self.storage.list(CRDS, None)
        for crd in items:
            self.known.add(crd["metadata"]["name"])
            self._serve(crd)
            self._enqueue(crd["metadata"]["name"])
        self._task = asyncio.create_task(self._run(), name="crd-controller")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def observe(self, ev: CachedEvent) -> None:
        if ev.group_plural != CRDS.group_plural:
            return
        name = ev.key.rsplit("/", 1)[-1]
        if ev.type == "DELETED":
            self.catalog.remove_custom(name)
            self.known.discard(name)
            self.claims.pop(name, None)
            for other in self.known:  # names it held may now be free for another
                self._enqueue(other)
            return
        self.known.add(name)
        self._serve(ev.obj)
        self._enqueue(name)

    def _serve(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        if condition(crd, "Established").get("status") == "True":
            self.catalog.set_custom(name, rows_of(crd))
        else:
            self.catalog.remove_custom(name)

    def _enqueue(self, name: str) -> None:
        if name not in self.pending:
            self.pending.add(name)
            self.queue.put_nowait(name)

    async def _run(self) -> None:
        while True:
            name = await self.queue.get()
            self.pending.discard(name)
            try:
                done = await self._reconcile(name)
            except Exception as exc:  # the store may be away: try again later
                log.warning("custom resource definition %s: %s", name, exc)
                done = False
            if not done:
                asyncio.get_running_loop().call_later(RETRY_SECONDS, self._enqueue, name)

    async def _reconcile(self, name: str) -> bool:
        try:
            crd = await self.storage.get(CRDS, None, name)
        except APIError as exc:
            if exc.code == 404:
                return True
            raise
        if crd["metadata"].get("deletionTimestamp"):
            return await self._clean_up(crd)
        conflict = _conflict(self.catalog, crd, self.claims)
        if not conflict:
            self.claims[name] = _claim(crd)
        status = wanted_status(crd, conflict)
        if status != crd.get("status"):
            await self._write_status(name, lambda _: status)
        return True

    async def _write_status(self, name: str, fn: Any) -> None:
        def put(current: Obj) -> Obj:
            current["status"] = fn(current)
            return current

        await self.storage.mutate(CRDS, None, name, put, subresource="status")

    async def _clean_up(self, crd: Obj) -> bool:
        name = crd["metadata"]["name"]
        if condition(crd, "Terminating").get("status") != "True":
            def terminating(current: Obj) -> Obj:
                status = _d(current.get("status"))
                conds = [c for c in status.get("conditions") or [] if _d(c).get("type") != "Terminating"]
                conds.append(_cond("Terminating", True, "InstanceDeletionInProgress",
                                   "CustomResource deletion is in progress", {}))
                return dict(status, conditions=conds)

            await self._write_status(name, terminating)
        rows = rows_of(crd)
        remaining = 0
        if rows:
            res = rows[0]  # every version is one store prefix, read by any of its rows
            items, _, _ = await self.storage.list(res, None)
            for obj in items:
                m = obj["metadata"]
                try:
                    _, gone = await self.storage.delete(res, m.get("namespace"), m["name"], options={})
                except APIError as exc:
                    gone = exc.code == 404
                remaining += not gone
        if remaining:
            return False

        def drop_finalizer(current: Obj) -> Obj:
            m = current["metadata"]
            m["finalizers"] = [f for f in m.get("finalizers") or [] if f != CLEANUP_FINALIZER]
            if not m["finalizers"]:
                del m["finalizers"]
            return current

        try:
            await self.storage.mutate(CRDS, None, name, drop_finalizer)
        except APIError as exc:
            if exc.code != 404:
                raise
        return True
