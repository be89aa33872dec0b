"""The endpoints of the ``kubernetes`` Service in ``default``: the API server's own address.

Pods find the API at ``kubernetes.default.svc`` (cluster IP ``.1`` of the service range, port
443); the Service has no selector, so no controller derives its endpoints from pods. In
Kubernetes the API server's endpoint reconciler writes them; here the leading control plane
writes one EndpointSlice with the address and port it serves on (those of its own URL), and
the nodes' service proxies do the rest. A server listening on every address (0.0.0.0) names
no address of its own, and one on loopback (`bosun up`'s default) one that pods cannot reach
(a DNAT to 127.0.0.1 from a pod is dropped as martian: a hang): then no slice is written, and
the Service, without endpoints, refuses connections at once.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from bosun.client.errors import ApiError
from bosun.controllers._common import Controller, Obj, resource
from bosun.controlplane import ComponentContext

SERVICES = resource("", "v1", "services")
SLICES = resource("discovery.k8s.io", "v1", "endpointslices")
NAMESPACE, NAME = "default", "kubernetes"
MANAGED_BY = "bosun-apiserver"
KEY = f"{NAMESPACE}/{NAME}"


def server_address(url: str) -> tuple[str, int] | None:
    """(IP, port) of the API server's URL; None when it names no single IPv4 address that pods
    could reach (unspecified, loopback, a host name)."""
    parts = urlsplit(url)
    try:
        ip = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return None
    if ip.version != 4 or ip.is_unspecified or ip.is_loopback:
        return None
    return str(ip), parts.port or 443


def desired_slice(address: str, port: int) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": NAME,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


class KubernetesEndpointsController(Controller):
    name = "kubernetes-endpoints"
    workers = 1

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.services = ctx.informers.get(SERVICES)
        self.slices = ctx.informers.get(SLICES)
        for inf in (self.services, self.slices):
            inf.add_handler(self._maybe, lambda _old, new: self._maybe(new), self._maybe)

    def _maybe(self, obj: Obj) -> None:
        m = obj.get("metadata") or {}
        if (m.get("namespace"), m.get("name")) == (NAMESPACE, NAME):
            self.queue.add(KEY)

    async def reconcile(self, key: str) -> None:
        where = server_address(self.client.config.server)
        if where is None or self.services.get(NAMESPACE, NAME) is None:
            return
        want = desired_slice(*where)
        have = self.slices.get(NAMESPACE, NAME)
        if have is None:
            try:
                await self.client.create(SLICES, want, NAMESPACE)
            except ApiError as e:
                if e.status != 409:
                    raise
            return
        if all(have.get(k) == want[k] for k in ("addressType", "endpoints", "ports")) and \
                (have.get("metadata") or {}).get("labels") == want["metadata"]["labels"]:
            return
        want["metadata"]["resourceVersion"] = have["metadata"]["resourceVersion"]
        await self.client.update(SLICES, want)


async def run(ctx: ComponentContext) -> None:
    controller = KubernetesEndpointsController(ctx)
    controller.queue.add(KEY)
    await controller.run()
