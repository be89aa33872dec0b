"""`bosun server`: the API server plus the components that act on it (scheduler, controllers).

Components reach the API only through the client library, with the same authentication,
validation, admission and errors as from another machine; since they share this server's
event loop, their requests go to its in-process dispatcher rather than over HTTPS to
itself (``BOSUN_LOCAL_TRANSPORT=0`` forces HTTPS, to compare). They run only while this server holds the
`bosun-controlplane` Lease, so several servers on one etcd never act twice.

The garbage collector, the namespace controller and the CRD finalizer are controllers like
the others, but deletion never finishes without them, and the serviceaccount controller makes
the ``default`` ServiceAccount without which no pod is admitted: they run in whichever server
leads, whatever ``--controllers`` says, unless it names ``-garbagecollector`` / ``-namespace`` /
``-crdfinalizer`` / ``-serviceaccounts``.

A component is any module that defines ``async def run(ctx: ComponentContext) -> None``
(:mod:`bosun.component`)
(it runs until cancelled): every such module in :mod:`bosun.controllers` is a controller,
and :mod:`bosun.scheduler` provides the scheduler. A new controller is a new module, not an
edit of a shared list.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import logging
import math
import pkgutil
import socket
from dataclasses import replace
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.server import APIServer, ServerConfig
from bosun.api.workers.metricspeers import OwnerPeers
from bosun.api.workers.pool import WorkerPool
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.leader import LeaderElector
from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.client.transport import LocalTransport
from bosun.component import Component, ComponentContext, ControlPlaneOptions
from bosun.membership import heartbeat, resign

log = logging.getLogger(__name__)

STRATEGIES = ("spread", "binpack", "random")
# The controllers without which deletion never finishes, or no pod is admitted (the default
# ServiceAccount): run unless turned off by name.
COLLECTORS = ("garbagecollector", "namespace", "crdfinalizer", "serviceaccounts")


def discover_components(options: ControlPlaneOptions) -> dict[str, Component]:
    """Every controller module with a ``run`` (filtered by --controllers; the collectors run
    unless named with a ``-``), and the scheduler."""
    import bosun.controllers as pkg

    wanted = set(options.controllers)
    found: dict[str, Component] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        if "*" not in wanted and info.name not in wanted and info.name not in COLLECTORS:
            continue
        if f"-{info.name}" in wanted:
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        run = getattr(mod, "run", None)
        if callable(run):
            found[info.name] = run
    if options.scheduler:
        with contextlib.suppress(ModuleNotFoundError):
            sched = importlib.import_module("bosun.scheduler")
            if callable(getattr(sched, "run", None)):
                found["scheduler"] = sched.run
    return found


class ControlPlane:
    def __init__(self, config: ServerConfig, options: ControlPlaneOptions | None = None) -> None:
        self.config = config
        self.options = options or ControlPlaneOptions()
        # New pods tolerate a failed node for as long as node lifecycle waits before evicting.
        tolerated = math.ceil(self.options.pod_eviction_timeout)
        self.api = APIServer(replace(config, default_toleration_seconds=tolerated))
        self.client: Client | None = None
        self.ctx: ComponentContext | None = None
        self._elector_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.components: dict[str, Component] = {}
        # The other API processes (--api-workers), when there are any.
        self.workers: WorkerPool | None = None

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def kubeconfig(self) -> Any:
        return self.api.kubeconfig

    def identity(self) -> str:
        """Stable across restarts of the same server, so that a restarted server takes its
        own Lease back at once instead of waiting for it to expire."""
        where = f"{self.config.data_dir.resolve()}|{self.config.listen}"
        return f"{socket.gethostname()}_{hashlib.sha1(where.encode()).hexdigest()[:10]}"

    async def start(self) -> None:
        await self.api.start()
        try:
            if self.config.api_workers > 1:
                assert self.api.store is not None and self.api.monitoring is not None
                assert self.api.instruments is not None and self.api.dispatcher is not None
                peers = OwnerPeers(self.api.instruments.exposition)
                self.api.instruments.peers = peers.for_owner
                self.workers = WorkerPool(self.config, self.api.store, self.api.dispatcher,
                                          self.config.api_workers - 1,
                                          logging.getLevelName(logging.getLogger().getEffectiveLevel()),
                                          extra={"monitoring": self.api.monitoring.answer, **peers.ops()})
                await self.workers.start()
            self.components = discover_components(self.options)
            if not self.components:
                return
            ca = (self.config.data_dir / "pki" / "ca.crt").read_bytes() if self.config.tls else None
            if self.config.tls and self.options.cluster_signing is None:
                pki = self.config.data_dir / "pki"
                self.options = replace(self.options, cluster_signing=(pki / "ca.crt", pki / "ca.key"))
            local = self.api.local if self.options.local_transport else None
            self.client = Client(ClusterConfig(server=self.api.url, ca_data=ca, insecure=False,
                                               token=self.api.token or None, client_cert=None, client_key=None,
                                               namespace="default"),
                                 transport=LocalTransport(local) if local is not None else None)
            elector = LeaderElector(self.client, "bosun-controlplane", "kube-system", identity=self.identity(),
                                    lease_duration=self.options.lease_duration,
                                    renew_deadline=self.options.lease_duration * 2 / 3,
                                    retry_period=max(0.5, self.options.lease_duration / 10))
            self._elector_task = asyncio.create_task(self._elect(elector), name="leader-election")
            if self.api.cluster is not None:  # a manager of the cluster's shared identity (not a server alone)
                self._heartbeat_task = asyncio.create_task(
                    heartbeat(self.client, self.identity(), self.options.advertise_url or self.url,
                              self.options.node_name, self.options.lease_duration, self._managers),
                    name="manager-lease")
        except BaseException:
            await self.stop()
            raise

    def _managers(self, urls: list[str]) -> None:
        """The kubeconfig this server wrote names the other managers too, so the bosun CLI
        and agents using it carry on through another when this one is gone."""
        mine = self.options.advertise_url or self.url
        self.api.write_kubeconfig([u for u in urls if u != mine])

    async def _elect(self, elector: LeaderElector) -> None:
        while True:
            try:
                await elector.run(self._lead, lambda: None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leader election failed; retrying")
            await asyncio.sleep(1.0)

    async def _lead(self) -> None:
        """Run every component while leading; any that fails is restarted after a pause."""
        assert self.client is not None
        # In-process, informers take the server's own objects (no JSON per event); components
        # treat informer objects as read-only, as client-go requires.
        shared = isinstance(self.client.transport, LocalTransport)
        self.ctx = ctx = ComponentContext(self.client, SharedInformers(self.client, shared_objects=shared),
                                          self.options)
        tasks = [asyncio.create_task(self._supervise(name, run, ctx), name=f"component-{name}")
                 for name, run in self.components.items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                await cancel_and_wait(t)
            self.ctx = None  # None while not leading
            await ctx.informers.stop()
            await ctx.close()

    async def _supervise(self, name: str, run: Component, ctx: ComponentContext) -> None:
        delay = 1.0
        while True:
            try:
                await run(ctx)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("component %s failed; restarting in %.0fs", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        if self.workers is not None:  # first: they reach the store through this process
            await self.workers.stop()
            self.workers = None
        await cancel_and_wait(self._elector_task)
        self._elector_task = None
        if self._heartbeat_task is not None:
            await cancel_and_wait(self._heartbeat_task)
            self._heartbeat_task = None
            if self.client is not None:
                await resign(self.client, self.identity())
        if self.client is not None:
            await self.client.close()
            self.client = None
        await self.api.stop()
