"""Namespace controller: empty a Terminating namespace, then remove its ``kubernetes``
finalizer so that the API lets it go.

Upstream's namespace deleter: every pass deletes what is left of every namespaced kind
(custom kinds too), and writes on the namespace the conditions that say where deletion
stands (NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
NamespaceDeletionContentFailure, NamespaceContentRemaining, NamespaceFinalizersRemaining,
with upstream's reasons and messages). While objects remain (pods shutting down, objects
whose finalizers their owners have yet to remove) it comes back, a little later each time.
"""

from __future__ import annotations

import logging

from bosun.component import ComponentContext
from bosun.controllers._common import Controller, Obj, resource, split_key, without_finalizer
from bosun.controllers._emptying import Emptying, delete_all
from bosun.controllers._kinds import ServedKinds

log = logging.getLogger(__name__)

NAMESPACES = resource("", "v1", "namespaces")
FINALIZER = "kubernetes"
FIRST_RETRY = 0.1
MAX_RETRY = 5.0


def conditions(result: Emptying) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) of every deletion condition, as upstream words them."""
    out = [("NamespaceDeletionDiscoveryFailure", "False", "ResourcesDiscovered",
            "All resources successfully discovered"),
           ("NamespaceDeletionGroupVersionParsingFailure", "False", "ParsedGroupVersions",
            "All legacy kube types successfully parsed")]
    if result.errors:
        out.append(("NamespaceDeletionContentFailure", "True", "ContentDeletionFailed", result.errors_message()))
    else:
        out.append(("NamespaceDeletionContentFailure", "False", "ContentDeleted",
                    "All content successfully deleted, may be waiting on finalization"))
    if result.remaining:
        out.append(("NamespaceContentRemaining", "True", "SomeResourcesRemain", result.remaining_message()))
    else:
        out.append(("NamespaceContentRemaining", "False", "ContentRemoved", "All content successfully removed"))
    if result.finalizers:
        out.append(("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain", result.finalizers_message()))
    else:
        out.append(("NamespaceFinalizersRemaining", "False", "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished"))
    return out


class NamespaceController(Controller):
    name = "namespace"
    workers = 4

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.kinds = ServedKinds(ctx)
        self.ns_inf = ctx.informers.get(NAMESPACES)
        self.ns_inf.add_handler(self._changed, lambda _o, n: self._changed(n), None)
        self.passes: dict[str, int] = {}  # namespace -> passes that left something behind

    def _changed(self, ns: Obj) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.enqueue(ns)

    async def reconcile(self, key: str) -> None:
        _, name = split_key(key)
        ns = self.ns_inf.get(None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            self.passes.pop(name, None)
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return  # the API deletes it once no finalizer is left
        result = await delete_all(self.client, [r for r in self.kinds.all() if r.namespaced], name)
        await self.write_conditions(NAMESPACES, ns, conditions(result))
        if not result.done:
            n = self.passes.get(name, 0)
            self.passes[name] = n + 1
            self.queue.add_after(key, min(MAX_RETRY, FIRST_RETRY * 2 ** n))
            return
        self.passes.pop(name, None)
        # Through the finalize subresource, on the namespace as it is now.
        await self.update_fresh(
            NAMESPACES, name, lambda fresh: {**fresh, "spec": without_finalizer(fresh.get("spec") or {}, FINALIZER)},
            subresource="finalize",
        )


async def run(ctx: ComponentContext) -> None:
    await NamespaceController(ctx).run()
