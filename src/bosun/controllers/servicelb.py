"""ServiceLB: a Service of ``type: LoadBalancer`` is given the nodes' addresses.

There is no load balancer in front of the cluster: every node's service proxy answers on
every node's address at the Service's port (as k3s's ServiceLB does with its svclb pods),
so the addresses to publish are the InternalIPs of the Ready nodes. Filling
``status.loadBalancer.ingress`` with them is what tools that wait for an external address
(``kubectl get svc`` EXTERNAL-IP, Helm's ``--wait``) need. Services naming a
``loadBalancerClass`` belong to another controller and are left alone.
"""

from __future__ import annotations

from bosun.controllers._common import NODES, Controller, Obj, resource, split_key
from bosun.controlplane import ComponentContext

SERVICES = resource("", "v1", "services")


def node_address(node: Obj) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP" and a.get("address"):
            return str(a["address"])
    return ""


def is_ready(node: Obj) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def ingress_for(nodes: list[Obj]) -> list[Obj]:
    """The Ready nodes' InternalIPs, sorted (a stable status: no write when nothing changed)."""
    ips = {node_address(n) for n in nodes if is_ready(n)} - {""}
    return [{"ip": ip, "ipMode": "VIP"} for ip in sorted(ips, key=lambda s: tuple(int(p) for p in s.split(".")))]


def is_ours(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


class ServiceLBController(Controller):
    name = "servicelb"
    workers = 1

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.services = ctx.informers.get(SERVICES)
        self.nodes = ctx.informers.get(NODES)
        self.services.add_handler(self.enqueue, lambda _old, new: self.enqueue(new))
        self.nodes.add_handler(self._nodes_changed, self._node_updated, self._nodes_changed)

    def _nodes_changed(self, _node: Obj) -> None:
        self.enqueue_all(s for s in self.services.list() if is_ours(s))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (is_ready(old), node_address(old)) != (is_ready(new), node_address(new)):
            self._nodes_changed(new)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        if svc is None:
            return
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if is_ours(svc):
            wanted = ingress_for(self.nodes.list())
        elif (svc.get("spec") or {}).get("type") != "LoadBalancer" and current:
            wanted = []  # no longer a load balancer: the addresses we gave go
        else:
            return
        if current != wanted:
            await self.patch_status(SERVICES, svc, {"loadBalancer": {"ingress": wanted or None}})


async def run(ctx: ComponentContext) -> None:
    await ServiceLBController(ctx).run()
