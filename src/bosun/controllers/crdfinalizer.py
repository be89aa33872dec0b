"""CRD finalizer: a deleted CustomResourceDefinition takes every object of its kind with it.

Upstream's apiextensions finalizing controller: the API puts the
``customresourcecleanup.apiextensions.k8s.io`` finalizer on every CRD; once the CRD is being
deleted (and so accepts no new objects), this controller marks it ``Terminating``
(InstanceDeletionInProgress), deletes its objects in every namespace (the same pass as the
namespace controller's), waits for those with finalizers, then removes the finalizer and
the API lets the CRD go.
"""

from __future__ import annotations

from bosun.api.strategy.apiextensions import CLEANUP_FINALIZER
from bosun.component import ComponentContext
from bosun.controllers._common import Controller, Obj, split_key, without_finalizer
from bosun.controllers._emptying import delete_all
from bosun.controllers._kinds import CRDS, ServedKinds

RETRY_SECONDS = 0.5


class CRDFinalizer(Controller):
    name = "crdfinalizer"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.kinds = ServedKinds(ctx)
        self.kinds.crds.add_handler(self._changed, lambda _o, n: self._changed(n), None)

    def _changed(self, crd: Obj) -> None:
        m = crd["metadata"]
        if m.get("deletionTimestamp") and CLEANUP_FINALIZER in (m.get("finalizers") or []):
            self.enqueue(crd)

    async def reconcile(self, key: str) -> None:
        _, name = split_key(key)
        crd = self.kinds.crds.get(None, name)
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return
        if CLEANUP_FINALIZER not in (crd["metadata"].get("finalizers") or []):
            return
        await self.write_conditions(CRDS, crd, [("Terminating", "True", "InstanceDeletionInProgress",
                                                 "CustomResource deletion is in progress")])
        res = self.kinds.of_crd(crd)
        if res is not None:
            result = await delete_all(self.client, [res], None)
            if not result.done:
                self.queue.add_after(key, RETRY_SECONDS)
                return
        await self.update_fresh(
            CRDS, name, lambda fresh: {**fresh, "metadata": without_finalizer(fresh["metadata"], CLEANUP_FINALIZER)},
        )


async def run(ctx: ComponentContext) -> None:
    await CRDFinalizer(ctx).run()
