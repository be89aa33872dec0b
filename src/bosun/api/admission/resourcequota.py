"""Kubernetes' ResourceQuota admission: a create that would take a namespace over one of its
quotas is refused, and one that fits is charged to the quota before it is stored.

The charge is a compare-and-swap write of the quota's ``status.used`` in the store, as
upstream's plugin does: every API process (``--api-workers``) shares the store, so two creates
racing for the last unit of a quota cannot both win, whichever process serves them; the loser's
swap fails, it reads the quota again and is refused. Within one process the charges of a
namespace also take a lock, so a burst of creates waits its turn instead of spending its
retries on conflicts. A charge is given back if the object is then not stored; what deletes
free is given back by the ResourceQuota controller, which recomputes ``status.used``.

Which quotas exist comes from the watch cache (no store read per write in a namespace without
quotas); the check and the charge read the quota from the store, so a cache that lags never
refuses or admits wrongly. An update is charged what it adds (a claim grown, a Service made a
LoadBalancer); what it frees the controller's recount gives back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from bosun.api import errors, quotausage
from bosun.api.admission.base import CREATE, UPDATE, Obj, Operation, Reader, Request
from bosun.api.quotausage import Usage
from bosun.api.registry import Resource, must_by_plural

QUOTAS = must_by_plural("", "v1", "resourcequotas")
PODS = must_by_plural("", "v1", "pods")
# What upstream's quota admission leaves alone by default (its DefaultIgnoredResources).
IGNORED = {"events"}


class CachedLists(Protocol):
    """Objects of a kind in a namespace as the watch cache holds them."""

    def list(self, res: Resource, namespace: str | None) -> list[Obj]: ...


class QuotaStore(Reader, Protocol):
    """The storage, with the guaranteed update the charge needs."""

    async def mutate(self, res: Resource, ns: str | None, name: str,
                     fn: Callable[[dict[str, Any]], dict[str, Any]], *,
                     subresource: str | None = None) -> dict[str, Any]: ...


def _forbidden(req: Request, message: str) -> errors.APIError:
    return errors.forbidden_request(f'{req.res.group_plural} "{req.name}" is forbidden: {message}')


def _status(quota: Obj) -> tuple[Usage, Usage]:
    return quotausage.hard_of(quota, "hard", "status"), quotausage.hard_of(quota, "used", "status")


def _check(req: Request, quota: Obj, delta: Usage) -> None:
    """Refuse when the quota's status does not cover ``delta`` or ``delta`` does not fit."""
    hard, used = _status(quota)
    name = quota["metadata"]["name"]
    unknown = sorted(k for k in delta if k not in hard or k not in used)
    if unknown:
        raise _forbidden(req, f"status unknown for quota: {name}, resources: {','.join(unknown)}")
    over = sorted(k for k, v in delta.items() if used[k] + v > hard[k])
    if over:
        raise _forbidden(req, f"exceeded quota: {name}, requested: {quotausage.pretty({k: delta[k] for k in over})}"
                              f", used: {quotausage.pretty({k: used[k] for k in over})}"
                              f", limited: {quotausage.pretty({k: hard[k] for k in over})}")


def _charged(quota: Obj, delta: Usage, sign: int) -> Obj:
    _, used = _status(quota)
    for k, v in delta.items():
        used[k] = max(used.get(k, Decimal(0)) + sign * v, Decimal(0))
    status = dict(quota.get("status") or {})
    status["used"] = dict(status.get("used") or {}, **quotausage.encode({k: used[k] for k in delta}))
    quota["status"] = status
    return quota


def _refund(delta: Usage) -> Callable[[Obj], Obj]:
    return lambda quota: _charged(quota, delta, -1)


class ResourceQuotaAdmission:
    """Creates (and updates, but of pods) of namespaced objects, against every quota of their
    namespace that selects them."""

    name = "ResourceQuota"
    mutating = False

    def __init__(self, store: QuotaStore, cache: CachedLists) -> None:
        self.store = store
        self.cache = cache
        self._locks: dict[str, asyncio.Lock] = {}

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        # Pods' updates are not charged: their containers' resources never change.
        return (res.namespaced and subresource is None and res.plural not in IGNORED
                and (operation == CREATE or (operation == UPDATE and res != PODS)))

    @staticmethod
    def _cost(req: Request) -> Usage:
        """A create costs the object's usage; an update what it adds (a claim grown, a
        Service made a LoadBalancer), as upstream charges only increases."""
        cost = quotausage.usage(req.res, req.obj)
        if req.old is None:
            return cost
        before = quotausage.usage(req.res, req.old)
        return {k: v - before.get(k, Decimal(0)) for k, v in cost.items() if v > before.get(k, Decimal(0))}

    def _deltas(self, req: Request) -> list[tuple[Obj, Usage]]:
        out = []
        cost: Usage | None = None
        for quota in self.cache.list(QUOTAS, req.namespace):
            if quota.get("metadata", {}).get("deletionTimestamp"):
                continue
            hard = quotausage.hard_of(quota)
            if not hard or not quotausage.matches(quota, req.res, req.obj):
                continue
            if cost is None:
                cost = self._cost(req)
            if req.res == PODS and req.operation == CREATE and cost:
                missing = quotausage.missing_specs(req.obj, hard)
                if missing:
                    what = "; ".join(f"{k} for: {','.join(sorted(set(v)))}" for k, v in sorted(missing.items()))
                    raise _forbidden(req, f"failed quota: {quota['metadata']['name']}: must specify {what}")
            delta = {k: v for k, v in cost.items() if k in hard}
            if delta:
                out.append((quota, delta))
        return out

    async def admit(self, req: Request) -> None:
        deltas = self._deltas(req)
        if not deltas:
            return
        if req.dry_run:
            for quota, delta in deltas:
                _check(req, await self.store.get(QUOTAS, req.namespace, quota["metadata"]["name"]), delta)
            return
        ns = str(req.namespace)
        lock = self._locks.setdefault(ns, asyncio.Lock())
        async with lock:
            charged: list[tuple[str, Usage]] = []
            try:
                for quota, delta in deltas:
                    qname = quota["metadata"]["name"]
                    await self.store.mutate(QUOTAS, req.namespace, qname, self._charge(req, delta),
                                            subresource="status")
                    charged.append((qname, delta))
            except BaseException:
                await self._give_back(ns, charged)
                raise
        req.on_failure(lambda: self._give_back(ns, charged))

    @staticmethod
    def _charge(req: Request, delta: Usage) -> Callable[[Obj], Obj]:
        def fn(current: Obj) -> Obj:
            _check(req, current, delta)
            return _charged(current, delta, 1)
        return fn

    async def _give_back(self, ns: str, charged: list[tuple[str, Usage]]) -> None:
        for qname, delta in charged:
            try:
                await self.store.mutate(QUOTAS, ns, qname, _refund(delta), subresource="status")
            except errors.APIError:
                continue  # gone, or unreachable: the controller's recount repairs it
