"""The ValidatingAdmissionPolicies and their bindings as the admission plugin reads them:
kept in memory from the watch cache (as upstream's informers keep them), so a write pays no
store read to learn which policies apply; the namespaces and params a policy reads come from
the same cache.

The keeper also writes each policy's ``status.observedGeneration`` once it has seen a new
generation, with ``status.typeChecking``: the warnings about fields its expressions read that
the matched kinds lack (:mod:`.policytypes`), as upstream's type-checking controller does.
Every API server process keeps its own copy; their status writes agree, so a second one is a
no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from bosun.aio import cancel_and_wait
from bosun.api.admission.policyauthz import mentions_authorizer
from bosun.api.admission.policytypes import type_warnings
from bosun.api.catalog import BUILTIN
from bosun.api.errors import APIError
from bosun.api.registry import Resource, by_kind, must_by_plural

if TYPE_CHECKING:
    from bosun.api.catalog import Catalog
    from bosun.api.storage import Storage
    from bosun.api.watchcache import CachedEvent, WatchCache

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POLICIES = must_by_plural("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies")
BINDINGS = must_by_plural("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings")
NAMESPACES = must_by_plural("", "v1", "namespaces")


class Policies:
    """Policies and bindings by name, and (policy, binding) pairs ready to evaluate."""

    def __init__(self) -> None:
        self.policies: dict[str, Obj] = {}
        self.bindings: dict[str, Obj] = {}
        self._pairs: list[tuple[Obj, Obj]] | None = []
        # Names of the paired policies whose expressions read ``authorizer`` (kept with the pairs).
        self.authorizing: frozenset[str] = frozenset()
        self.cache: WatchCache | None = None
        self.catalog: Catalog | None = None
        self._storage: Storage | None = None
        self._stale: set[str] = set()  # policies whose status.observedGeneration lags
        self._status_task: asyncio.Task[None] | None = None

    # ---- reads, per write ---------------------------------------------------------------

    def pairs(self) -> list[tuple[Obj, Obj]]:
        """Each binding with the policy it names (bindings naming no policy are left out)."""
        if self._pairs is None:
            out = []
            for name in sorted(self.bindings):
                binding = self.bindings[name]
                policy = self.policies.get(str((binding.get("spec") or {}).get("policyName") or ""))
                if policy is not None:
                    out.append((policy, binding))
            self._pairs = out
            self.authorizing = frozenset(p["metadata"]["name"] for p, _ in out
                                         if mentions_authorizer(p.get("spec") or {}))
        return self._pairs

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        """An object as the watch cache holds it (None: there is none, or no cache)."""
        if self.cache is None:
            return None
        entry = self.cache.resource(res.group_plural).get(res.key(namespace, name))
        return entry.obj if entry is not None else None

    def list(self, res: Resource, namespace: str | None) -> list[Obj]:
        if self.cache is None:
            return []
        prefix = res.key_prefix(namespace)
        return [e.obj for key, e in sorted(self.cache.resource(res.group_plural).all.items.items())
                if key.startswith(prefix)]

    def namespace(self, name: str | None) -> Obj | None:
        return self.get(NAMESPACES, None, name) if name else None

    def resource_of(self, api_version: str, kind: str) -> Resource | None:
        """The served resource of a paramKind (custom resources included)."""
        if self.catalog is not None:
            return self.catalog.by_kind(api_version, kind)
        return by_kind(api_version, kind)  # not started: the built-in kinds

    # ---- keeping current ----------------------------------------------------------------

    async def start(self, storage: Storage, cache: WatchCache, catalog: Catalog) -> None:
        """Subscribe, then load what exists (an event in between is applied twice, harmlessly)."""
        self._storage, self.cache, self.catalog = storage, cache, catalog
        cache.listeners.append(self.observe)
        for res, into in ((POLICIES, self.policies), (BINDINGS, self.bindings)):
            items, _, _ = await storage.list(res, None)
            for obj in items:
                into[obj["metadata"]["name"]] = obj
                if res == POLICIES:
                    self._check_status(obj)
        self._pairs = None
        self._schedule_status()

    async def stop(self) -> None:
        if self.cache is not None:
            with contextlib.suppress(ValueError):
                self.cache.listeners.remove(self.observe)
        await cancel_and_wait(self._status_task)

    def observe(self, ev: CachedEvent) -> None:
        gp = ev.group_plural
        if gp == POLICIES.group_plural:
            into = self.policies
        elif gp == BINDINGS.group_plural:
            into = self.bindings
        else:
            return
        name = ev.key.rsplit("/", 1)[-1]
        if ev.type == "DELETED":
            into.pop(name, None)
        else:
            into[name] = ev.obj
            if into is self.policies:
                self._check_status(ev.obj)
                self._schedule_status()
        self._pairs = None

    def _check_status(self, policy: Obj) -> None:
        meta = policy.get("metadata") or {}
        observed = (policy.get("status") or {}).get("observedGeneration")
        if observed != meta.get("generation") and not meta.get("deletionTimestamp"):
            self._stale.add(meta["name"])

    def _schedule_status(self) -> None:
        if self._stale and self._storage is not None and (self._status_task is None or self._status_task.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: written at the next start
                self._status_task = asyncio.get_running_loop().create_task(self._write_status())

    async def _write_status(self) -> None:
        assert self._storage is not None
        while self._stale:
            name = self._stale.pop()

            def observed(current: Obj) -> Obj:
                status = dict(current.get("status") or {})
                status["observedGeneration"] = current["metadata"].get("generation") or 1
                warnings = type_warnings(current.get("spec") or {}, self.catalog or BUILTIN)
                status["typeChecking"] = {"expressionWarnings": warnings} if warnings else {}
                current["status"] = status
                return current
            try:
                await self._storage.mutate(POLICIES, None, name, observed, subresource="status")
            except APIError as exc:
                if exc.code != 404:
                    log.warning("could not write the status of ValidatingAdmissionPolicy %s: %s", name, exc)
