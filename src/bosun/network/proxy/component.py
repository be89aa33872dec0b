"""The service proxy as a node component: watch Services and EndpointSlices, keep the table
in step, a few transactions a second at most.

Events only mark Services dirty; a sync recomputes the dirty Services' rules (:mod:`.state`),
diffs the merged result against what was committed (:mod:`.diff`) and sends the difference
(:mod:`.apply`). Bursts (a Deployment's rollout changes slices many times a second) are
coalesced: a sync starts a few milliseconds after the first event and at most every
``PACING.min_interval`` seconds. The first sync of a process, and the one after a failed transaction,
rebuilds the proxy's part of the table in one transaction, so no rule is ever doubled and
established connections keep their translation (it lives in conntrack, not in the table).
"""

from __future__ import annotations

import asyncio
import logging
import shutil

from bosun.aio import cancel_and_wait
from bosun.api.registry import must_by_plural
from bosun.client.informer import object_key
from bosun.network.base import NodeNetworkContext
from bosun.network.coalesce import Pacing, run_coalesced
from bosun.network.proxy import route
from bosun.network.proxy.apply import Kernel
from bosun.network.proxy.base import NodeNetwork
from bosun.network.proxy.diff import Committed, full
from bosun.network.proxy.state import (
    NodeView,
    Obj,
    ServiceRules,
    service_rules,
    slice_service_key,
)

log = logging.getLogger(__name__)

SERVICES = must_by_plural("", "v1", "services")
SLICES = must_by_plural("discovery.k8s.io", "v1", "endpointslices")
SLICE_INDEX = "proxy-service"
# At most five syncs a second; failed ones are retried, doubling the pause up to 10 s.
PACING = Pacing(min_interval=0.2, max_retry_pause=10.0)

# Without br_netfilter's call into the IP hooks, a reply from a pod to a pod on the same
# bridge never passes conntrack, so the DNAT of a Service is not undone and the client drops
# the reply (it came from the pod's address, not the Service's). Per network namespace since
# Linux 5.3; the default is 1 wherever the module is loaded, and it is set again here.
# Forwarding: NodePort traffic for endpoints elsewhere leaves by another interface.
SYSCTLS = {"net.bridge.bridge-nf-call-iptables": "1", "net.ipv4.ip_forward": "1"}


class ServiceProxy:
    def __init__(self, ctx: NodeNetworkContext, kernel: Kernel | None = None) -> None:
        self.kernel = kernel or Kernel()
        self.services = ctx.informers.get(SERVICES)
        self.slices = ctx.informers.get(SLICES)
        self.informers = ctx.informers
        self.node = NodeView(node_name=ctx.node_name, cluster_cidr=ctx.network.cluster_cidr)
        self.node_ip = ctx.node_ip
        self._route_dev = ""
        self.net = NodeNetwork(cluster_cidr=ctx.network.cluster_cidr, service_cidr=ctx.network.service_cidr,
                               pod_cidr=ctx.pod_cidr)
        self.committed = Committed()
        self._dirty: set[str] = set()
        self._rebuild = True  # the next sync makes the table anew (first sync, failed one)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.syncs = 0

    async def start(self) -> None:
        if not shutil.which("conntrack"):
            log.warning("conntrack not found (Debian package conntrack): UDP flows to removed "
                        "endpoints are not flushed")
        for key, value in SYSCTLS.items():
            await self.kernel.sysctl(key, value)
        self._route_dev = await route.ensure(self.net.service_cidr, self.node_ip, self.kernel.prefix)
        self.slices.add_index(SLICE_INDEX, lambda s: [k] if (k := slice_service_key(s)) else [])
        self.services.add_handler(self._on_service, lambda _old, new: self._on_service(new), self._on_service)
        self.slices.add_handler(self._on_slice, self._on_slice_update, self._on_slice)
        await self.informers.start()
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="service-proxy")

    async def stop(self, *, remove: bool = False) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if remove:
            await self.kernel.remove_table()
            await route.remove(self.net.service_cidr, self._route_dev, self.kernel.prefix)
            self.committed, self._rebuild = Committed(), True

    # -- events: mark dirty, wake the loop --------------------------------------------------

    def _mark(self, key: str | None) -> None:
        if key:
            self._dirty.add(key)
            self._wake.set()

    def _on_service(self, svc: Obj) -> None:
        self._mark(object_key(svc))

    def _on_slice(self, slc: Obj) -> None:
        self._mark(slice_service_key(slc))

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        self._mark(slice_service_key(old))
        self._mark(slice_service_key(new))

    # -- syncing -----------------------------------------------------------------------------

    async def _run(self) -> None:
        await run_coalesced(self._wake, self.sync, PACING, log,
                            "service proxy sync (the next one rebuilds the table)")

    async def sync(self) -> None:
        """Recompute the dirty Services, send the difference (everything, when rebuilding)."""
        dirty, self._dirty = self._dirty, set()
        changed: dict[str, ServiceRules | None] = {}
        for key in dirty:
            svc = self.services.get_by_key(key)
            changed[key] = None if svc is None else service_rules(
                svc, self.slices.by_index(SLICE_INDEX, key), self.node)
        if self._rebuild:
            self.committed.commit(changed)
            existing = await self.kernel.objects()
            await self.kernel.apply(full(self.net, self.committed.ruleset(), existing))
            self._rebuild = False
        else:
            changes = self.committed.plan(changed)
            # Recorded first: after a failed transaction the table is rebuilt from this.
            self.committed.commit(changed)
            if changes:
                try:
                    await self.kernel.apply(changes)
                except BaseException:
                    self._rebuild = True
                    raise
        self.syncs += 1
