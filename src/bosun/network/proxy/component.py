"""The service proxy as a node component: watch Services and EndpointSlices, keep the table
in step, a few transactions a second at most.

Events only mark Services dirty; a sync recomputes the dirty Services' rules (:mod:`.state`),
diffs the merged result against what was committed (:mod:`.diff`) and sends the difference
(:mod:`.apply`). Bursts (a Deployment's rollout changes slices many times a second) are
coalesced: a sync starts a few milliseconds after the first event and at most every
``MIN_INTERVAL`` seconds. The first sync of a process, and the one after a failed transaction,
rebuilds the table whole in one transaction, so no rule is ever doubled and established
connections keep their translation (it lives in conntrack, not in the table).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bosun.api.registry import must_by_plural
from bosun.client.informer import object_key
from bosun.network.proxy.apply import Kernel
from bosun.network.proxy.base import NodeNetwork
from bosun.network.proxy.diff import diff, full
from bosun.network.proxy.state import (
    NodeView,
    Obj,
    Ruleset,
    ServiceRules,
    ruleset,
    service_rules,
    slice_service_key,
)

if TYPE_CHECKING:  # node.py lists this component; the context is only a parameter's type here
    from bosun.network.node import NodeNetworkContext

log = logging.getLogger(__name__)

SERVICES = must_by_plural("", "v1", "services")
SLICES = must_by_plural("discovery.k8s.io", "v1", "endpointslices")
SLICE_INDEX = "proxy-service"
MIN_INTERVAL = 0.2  # seconds between two syncs: at most five a second
BATCH_DELAY = 0.005  # after the first event, so that the events of one change go together

# Without br_netfilter's call into the IP hooks, a reply from a pod to a pod on the same
# bridge never passes conntrack, so the DNAT of a Service is not undone and the client drops
# the reply (it came from the pod's address, not the Service's). Per network namespace since
# Linux 5.3; the default is 1 wherever the module is loaded, and it is set again here.
SYSCTLS = {"net/bridge/bridge-nf-call-iptables": "1", "net/ipv4/ip_forward": "1"}


def _set_sysctls() -> None:
    for key, value in SYSCTLS.items():
        path = Path("/proc/sys") / key
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
        except OSError as e:
            log.warning("cannot set %s=%s (%s): same-node Service traffic may fail", key.replace("/", "."),
                        value, e)


class ServiceProxy:
    def __init__(self, ctx: NodeNetworkContext, kernel: Kernel | None = None) -> None:
        self.kernel = kernel or Kernel()
        self.services = ctx.informers.get(SERVICES)
        self.slices = ctx.informers.get(SLICES)
        self.informers = ctx.informers
        self.node = NodeView(node_name=ctx.node_name, cluster_cidr=ctx.network.cluster_cidr)
        self.net = NodeNetwork(cluster_cidr=ctx.network.cluster_cidr, service_cidr=ctx.network.service_cidr,
                               pod_cidr=ctx.pod_cidr)
        self._parts: dict[str, ServiceRules] = {}
        self._dirty: set[str] = set()
        self._committed: Ruleset | None = None  # None: the next sync rebuilds the table whole
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.syncs = 0

    async def start(self) -> None:
        if not shutil.which("conntrack"):
            log.warning("conntrack not found (Debian package conntrack): UDP flows to removed "
                        "endpoints are not flushed")
        await asyncio.to_thread(_set_sysctls)
        self.slices.add_index(SLICE_INDEX, lambda s: [k] if (k := slice_service_key(s)) else [])
        self.services.add_handler(self._on_service, lambda _old, new: self._on_service(new), self._on_service)
        self.slices.add_handler(self._on_slice, self._on_slice_update, self._on_slice)
        await self.informers.start()
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="service-proxy")

    async def stop(self, *, remove: bool = False) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if remove:
            await self.kernel.remove_table()
            self._committed = None

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
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_DELAY)
            self._wake.clear()
            started = time.monotonic()
            try:
                await self.sync()
            except Exception:
                log.exception("service proxy sync failed; the next one rebuilds the table")
                self._committed = None
                self._wake.set()
            await asyncio.sleep(max(0.0, MIN_INTERVAL - (time.monotonic() - started)))

    async def sync(self) -> None:
        """Recompute the dirty Services, send the difference (everything, the first time)."""
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            svc = self.services.get_by_key(key)
            if svc is None:
                self._parts.pop(key, None)
            else:
                self._parts[key] = service_rules(svc, self.slices.by_index(SLICE_INDEX, key), self.node)
        wanted = ruleset(self._parts[k] for k in sorted(self._parts))
        changes = full(self.net, wanted) if self._committed is None else diff(self._committed, wanted)
        if changes:
            try:
                await self.kernel.apply(changes)
            except BaseException:
                self._committed = None
                raise
        self._committed = wanted
        self.syncs += 1
