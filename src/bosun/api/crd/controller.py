"""CustomResourceDefinitions brought to life: named, established and served.

Kubernetes splits this over apiextensions-apiserver's naming and establishing
controllers; here one small controller per API server does the two, because each server
must serve what its store's CRDs define:

- every CRD event from the watch cache updates the server's :class:`~bosun.api.catalog.Catalog`
  at once: a CRD whose ``Established`` condition is True is served (one registry row per
  served version, with :class:`~bosun.api.crd.version.CustomVersion` as strategy), a deleted
  one no longer is. Every server of a store follows the same events, so they agree;
- a CRD whose names are free gets ``NamesAccepted`` and ``Established`` (status writes are
  idempotent, so several servers doing it is harmless); names already in use get
  ``NamesAccepted=False`` saying which;
- a CRD being deleted stops accepting new objects; emptying it and letting it go is the
  CRD finalizer's, a controller like the others (:mod:`bosun.controllers.crdfinalizer`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.catalog import Catalog
from bosun.api.crd.rows import condition, is_established, rows_of
from bosun.api.crd.rows import obj_dict as _d
from bosun.api.errors import APIError
from bosun.api.registry import must_by_plural
from bosun.api.storage import Storage
from bosun.api.watchcache import CachedEvent

log = logging.getLogger(__name__)

CRDS = must_by_plural("apiextensions.k8s.io", "v1", "customresourcedefinitions")
RETRY_SECONDS = 0.5
Obj = dict[str, Any]


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
        if is_established(crd):
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
            return True  # its objects are the CRD finalizer's (bosun.controllers.crdfinalizer)
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
