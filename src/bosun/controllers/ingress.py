"""The control plane's part of Ingress: the default IngressClass and each Ingress's address.

Routing itself happens on every node (the agents' nginx, :mod:`bosun.network.ingress`);
here, under the leader lease:

- the IngressClass ``bosun`` (controller ``bosun.dev/ingress-nginx``, marked as the
  cluster's default) is created when missing, as a distribution's add-on manager would;
- every Ingress of ours gets ``status.loadBalancer.ingress`` = the Ready nodes' addresses,
  since each of them answers for it (``kubectl get ingress`` shows them as ADDRESS, and
  tools that wait for an address stop waiting); an Ingress that stops being ours (another
  class) loses the addresses we wrote.
"""

from __future__ import annotations

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import NODES, Controller, Obj, resource, split_key
from bosun.controllers.servicelb import ingress_for, is_ready, node_address
from bosun.network.ingress.classes import CLASS_NAME, default_class, is_ours

INGRESSES = resource("networking.k8s.io", "v1", "ingresses")
CLASSES = resource("networking.k8s.io", "v1", "ingressclasses")
ENSURE_CLASS = "\x00ingressclass"


def addresses(nodes: list[Obj]) -> list[Obj]:
    """IngressLoadBalancerIngress entries (an IP each; Ingress status has no ipMode)."""
    return [{"ip": entry["ip"]} for entry in ingress_for(nodes)]


class IngressController(Controller):
    name = "ingress"
    workers = 1

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.ingresses = ctx.informers.get(INGRESSES)
        self.classes = ctx.informers.get(CLASSES)
        self.nodes = ctx.informers.get(NODES)
        self.ingresses.add_handler(self.enqueue, lambda _old, new: self.enqueue(new))
        self.classes.add_handler(self._all, lambda _old, _new: self._all(_new), self._all)
        self.nodes.add_handler(self._all, self._node_updated, self._all)
        self.queue.add(ENSURE_CLASS)

    def _all(self, _obj: Obj) -> None:
        self.enqueue_all(self.ingresses.list())

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (is_ready(old), node_address(old)) != (is_ready(new), node_address(new)):
            self._all(new)

    async def _ensure_class(self) -> None:
        if self.classes.get(None, CLASS_NAME) is not None:
            return
        try:
            await self.client.create(CLASSES, default_class())
        except ApiError as e:
            if e.status != 409:
                raise

    async def reconcile(self, key: str) -> None:
        if key == ENSURE_CLASS:
            await self._ensure_class()
            return
        ns, name = split_key(key)
        ing = self.ingresses.get(ns, name)
        if ing is None:
            return
        current = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if is_ours(ing, self.classes.list()):
            wanted = addresses(self.nodes.list())
        elif current and all(set(e) == {"ip"} for e in current):
            wanted = []  # no longer ours: the addresses we gave go
        else:
            return
        if current != wanted:
            await self.patch_status(INGRESSES, ing, {"loadBalancer": {"ingress": wanted or None}})


async def run(ctx: ComponentContext) -> None:
    await IngressController(ctx).run()
