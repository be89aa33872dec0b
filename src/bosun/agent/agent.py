"""The node agent: registers the Node, keeps one worker per pod bound to it, and notices
container exits from the runtime driver (told by it, or by relisting it).

Start-up order matters for re-adoption: the pod informer syncs first, then containers
whose pod is no longer bound here (deleted while we were away) are stopped, and only then
do workers start, each finding its own pod's containers still running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import shutil
import socket
from collections.abc import Callable
from typing import Any

from bosun.agent import netstate, podsecurity, podspec
from bosun.agent.config import AgentConfig
from bosun.agent.drain import Drain, StopJob
from bosun.agent.hostinfo import node_ip_towards
from bosun.agent.leftovers import remove_pods
from bosun.agent.node import NodeManager
from bosun.agent.poddns import ClusterDNS
from bosun.agent.podworker import PodWorker
from bosun.agent.runtime.base import ContainerEvents, ContainerState, PodNetwork, PodNetworkAware, RuntimeDriver
from bosun.agent.scrape import PodScraper
from bosun.agent.server import AgentServer
from bosun.agent.serviceenv import SERVICES
from bosun.agent.status import PODS, RETRYABLE, StatusManager, now
from bosun.agent.trash import Trash
from bosun.agent.volumes import PVS
from bosun.aio import cancel_and_wait
from bosun.api.registry import must_by_plural
from bosun.client.events import EventRecorder
from bosun.client.informer import Informer
from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.network.base import NodeComponent, NodeNetworkContext
from bosun.network.config import gateway
from bosun.network.node import components, load_network_config
from bosun.network.overlay import pod_mtu
from bosun.security.nodecreds import ensure_node_credential

log = logging.getLogger(__name__)
Pod = dict[str, Any]
POD_START_SLOTS = 32
ENDPOINTSLICES = must_by_plural("discovery.k8s.io", "v1", "endpointslices")
NODES = must_by_plural("", "v1", "nodes")
"""Pods set up at the same time (sandbox, network, first containers; see PodWorker.sync).
32 rather than 16 since a pod's setup waits more than it computes (shims forked by the
zygote, file work and CNI plugins off the loop): 100 pods all Running 2.46 s against 2.79 s
(mean of 3 runs each, same median), 2 cores."""


class Agent:
    def __init__(self, client: Client, config: AgentConfig, driver: RuntimeDriver, *,
                 node_ip: str | None = None) -> None:
        # A client of our own over the caller's connection pool: start() trades its credential
        # for the node's own (bosun.security.nodecreds), which must not change the caller's.
        client = Client(dataclasses.replace(client.config), timeout=client.timeout, transport=client.transport)
        self.client = client
        self.config = config
        self.driver = driver
        self.node_ip = node_ip or config.node_ip or node_ip_towards(client.config.server)
        self.node = NodeManager(client, config, self.node_ip, driver.name)
        self.statuses = StatusManager(client, config.status_flush_interval)
        self.recorder = EventRecorder(client, "kubelet", host=config.node_name)
        self.informer = Informer(client, PODS, field_selector=f"spec.nodeName={config.node_name}")
        # Cluster-wide informers for the network parts (Services, EndpointSlices, Nodes, ...).
        self.informers = SharedInformers(client)
        # Services, EndpointSlices and Nodes too for their HTTP checks (shared with the network parts').
        self.scraper = PodScraper(self.informer.list, self.recorder, list_services=self.informers.get(SERVICES).list,
                                  list_slices=self.informers.get(ENDPOINTSLICES).list,
                                  list_nodes=self.informers.get(NODES).list, node_name=config.node_name)
        self.server = AgentServer(client, config.node_name, client.config.token or "",
                                  config.data_dir / "pki", [self.node_ip, socket.gethostname(), "localhost"],
                                  self.informer.get, config.pods_dir, self._container_running, driver,
                                  scraper=self.scraper)
        self.trash = Trash(config.data_dir / "trash")  # pod directories, deleted after their pods
        self.workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._bg: list[asyncio.Task[None]] = []
        self._fingerprints: dict[str, tuple[tuple[str, str], ...]] = {}
        self._allocatable: dict[str, str] = {}
        self.pod_cidr = ""
        self.network: list[NodeComponent] = []
        self.cluster_dns: ClusterDNS | None = None  # what pods' resolv.conf names, once the network runs
        self._start_slots = asyncio.Semaphore(POD_START_SLOTS)
        self._drain = Drain()
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        self.config.pods_dir.mkdir(parents=True, exist_ok=True)
        self.trash.empty_later()  # what a crash left there
        # Whatever credential we were started with (join token, admin) only buys the node's
        # own, which confines us to this node's objects (see bosun.security.nodecreds).
        self.server.own_token = await ensure_node_credential(self.client, self.config.node_name,
                                                             self.config.data_dir / "pki")
        await self.driver.start()
        await self.server.start(self.config.listen_host, self.config.listen_port)
        self.node.kubelet_port = self.server.port
        await self.node.register()
        await self.node.renew_lease()
        self._heartbeat = asyncio.create_task(self.node.run(), name="agent-heartbeat")
        self.pod_cidr = await self.node.wait_pod_cidr()  # heartbeating (NotReady) meanwhile
        await self._start_network()
        self._allocatable = self.node.capacity()
        self._bg.append(asyncio.create_task(self.statuses.run(), name="agent-status"))
        self.informer.add_handler(self._on_add, self._on_update, self._on_delete)
        await self.informer.start()
        await self.informer.wait_synced()
        await self._remove_orphans()
        for pod in self.informer.list():
            self._ensure_worker(pod)
        self._bg.append(asyncio.create_task(self._relist(), name="agent-relist"))
        self._bg.append(asyncio.create_task(self._housekeeping(), name="agent-housekeeping"))
        await self.informers.start()  # the Services', when the network parts did not
        self._bg.append(asyncio.create_task(self.scraper.run(), name="agent-scrape"))

    async def _start_network(self) -> None:
        """The node's network parts, before any pod starts (pods need DNS and routes at once);
        the driver learns the podCIDR and the pods' MTU first (whether or not this agent
        programs the node's network: its pods need addresses either way)."""
        network = await load_network_config(self.client)
        if isinstance(self.driver, PodNetworkAware):
            mtu = await pod_mtu(network, self.node_ip)
            self.driver.set_pod_network(PodNetwork(self.pod_cidr, mtu))
        if not self.config.node_network:
            return
        ctx = NodeNetworkContext(client=self.client, informers=self.informers, node_name=self.config.node_name,
                                 node_ip=self.node_ip, pod_cidr=self.pod_cidr, network=network,
                                 state_dir=self.config.data_dir / "network",
                                 upstream_dns=tuple(self.config.upstream_dns),
                                 ingress_http_port=self.config.ingress_http_port,
                                 ingress_https_port=self.config.ingress_https_port)
        netstate.save(ctx)  # first: a start cut short leaves rules a cleanup must find
        for component in components(ctx):
            await component.start()
            self.network.append(component)
        self.cluster_dns = ClusterDNS(gateway(self.pod_cidr), ctx.network.cluster_domain)

    async def stop(self, report: Callable[[str], None] | None = None) -> None:
        """Stop the agent; containers keep running unless the config says to drain.

        Draining stops every pod in parallel (see bosun.agent.drain) before the node's
        network goes, so that preStop hooks still reach Services and DNS; ``report`` is told
        what the drain waits for, and the node keeps heartbeating until its pods are stopped.
        After :meth:`hurry` the rest of the stop is quick: what still runs is left for the
        next start to adopt or remove (network rules included)."""
        for t in self._bg:
            await cancel_and_wait(t)
        self._bg.clear()
        if not self.config.drain_on_stop:
            await cancel_and_wait(self._heartbeat)
        await self.informer.stop()
        cut = [self.workers[uid] for uid in self._tasks if uid in self.workers]
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            await cancel_and_wait(t)
        if self.config.drain_on_stop and not self._drain.hurried:
            # Heartbeating meanwhile: a node silent for its pods' grace period would be
            # tainted unreachable and its pods evicted (deleted) from the API.
            await self.drain(cut, report)
        await cancel_and_wait(self._heartbeat)
        remove = self.config.drain_on_stop and not self._drain.hurried
        for component in reversed(self.network):
            try:
                await component.stop(remove=remove)
            except Exception:
                log.exception("stopping %s failed", type(component).__name__)
        if remove and self.network:
            netstate.forget(self.config.data_dir / "network")
        self.network.clear()
        await self.informers.stop()
        await self.server.stop()
        await self.recorder.close()
        await self.driver.close()

    def hurry(self) -> list[str]:
        """End a drain now (a second Ctrl-C); returns the pods left running."""
        return self._drain.hurry()

    async def drain(self, workers: list[PodWorker], report: Callable[[str], None] | None = None) -> None:
        """Stop and remove every container and sandbox this node runs (`bosun up` exit):
        the pods of ``workers`` in parallel within their own grace periods, then whatever
        no worker owned."""
        self._drain.report = report or self._drain.report
        await self._drain.run([StopJob(f"{w.namespace}/{w.name}", w.stop_grace(),
                                       functools.partial(w.terminate, w.stop_grace(), delete=False))
                               for w in workers])
        if not self._drain.hurried:
            removed = await remove_pods(self.driver, self.config.pods_dir, grace=0)
            if removed.containers or removed.sandboxes:
                log.info("drain removed what no pod worker owned: %s", removed)

    # -- pods -------------------------------------------------------------------------------------

    def _ensure_worker(self, pod: Pod) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None and not worker.done:
            worker.update(pod)
            return
        if worker is not None:
            return  # finished (terminated): the pod object is on its way out
        if self._rejected(pod):
            return
        worker = PodWorker(pod, config=self.config, client=self.client, driver=self.driver,
                           statuses=self.statuses, recorder=self.recorder, node_ip=self.node_ip,
                           allocatable=self._allocatable, trash=self.trash, start_slots=self._start_slots,
                           cluster_dns=self.cluster_dns)
        self.workers[uid] = worker
        self._tasks[uid] = asyncio.create_task(self._run_worker(uid, worker), name=f"pod-{uid}")

    def _rejected(self, pod: Pod) -> bool:
        """kubelet's pod admission: a pod this node cannot run as asked (a sysctl it does not
        allow) fails at once with the reason, and no container of it is started."""
        message = podsecurity.sysctl_rejection(pod, self.config.allowed_unsafe_sysctls)
        if message is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return False
        status = pod.get("status") or {}
        if status.get("phase") == "Failed" and status.get("reason") == podsecurity.SYSCTL_FORBIDDEN:
            return True  # already said
        meta = pod["metadata"]
        self.recorder.event(pod, "Warning", podsecurity.SYSCTL_FORBIDDEN, message)
        self.statuses.set(meta["namespace"], meta["name"], meta["uid"], {
            "phase": "Failed", "reason": podsecurity.SYSCTL_FORBIDDEN, "message": f"Pod was rejected: {message}",
            "startTime": status.get("startTime") or now(), "qosClass": podspec.qos_class(pod)})
        return True

    async def _run_worker(self, uid: str, worker: PodWorker) -> None:
        try:
            await worker.run()
        finally:
            self._tasks.pop(uid, None)

    def _on_add(self, pod: Pod) -> None:
        self._ensure_worker(pod)

    def _on_update(self, old: Pod, pod: Pod) -> None:
        self._ensure_worker(pod)

    def _on_delete(self, pod: Pod) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None and not worker.done:
            worker.remove()
        elif worker is not None:
            del self.workers[uid]  # finished, and its pod is gone for good

    async def _remove_orphans(self) -> None:
        """Containers and sandboxes of pods no longer bound here (deleted while the agent
        was down, or left by a stop cut short), removed before any worker starts."""
        known = {p["metadata"]["uid"] for p in self.informer.list()}
        removed = await remove_pods(self.driver, self.config.pods_dir, keep=known)
        if removed.containers or removed.sandboxes or removed.pod_dirs:
            log.warning("removed what pods gone while the agent was down left: %s", removed)

    async def _container_running(self, uid: str, name: str) -> bool:
        """Asked of the driver, not of the last relist: with ContainerEvents that can be
        10 s old, and a container the worker just started is no event."""
        return any(st.name == name and st.state == ContainerState.RUNNING
                   for st in await self.driver.list_containers(uid))

    async def _housekeeping(self) -> None:
        """Slow periodic checks: emptyDir sizeLimits (eviction), directories of deleted
        local-path PersistentVolumes."""
        while True:
            await asyncio.sleep(self.config.housekeeping_interval)
            try:
                await self.remove_released_volumes()
            except asyncio.CancelledError:
                raise
            except RETRYABLE as e:
                log.warning("local volume cleanup: %s", e)
            for worker in list(self.workers.values()):
                try:
                    await worker.check_volumes()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("pod %s/%s: volume check failed", worker.namespace, worker.name)

    async def remove_released_volumes(self) -> None:
        """Delete this node's local-path directories whose PersistentVolume no longer exists
        (the claim was deleted under reclaimPolicy Delete and the provisioner removed the PV)."""
        root = self.config.volumes_dir
        dirs = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
        if not dirs:
            return
        existing = {str(pv["metadata"]["name"]) for pv in (await self.client.list(PVS))["items"]}
        for d in dirs:
            if d.name not in existing:
                log.info("removing %s: its PersistentVolume is gone", d)
                await asyncio.to_thread(shutil.rmtree, d, True)

    async def _relist(self) -> None:
        """Notice state changes of containers (exits above all) and wake their pod's worker:
        a driver that tells exits itself (ContainerEvents) is relisted when it does and every
        ``events_relist_interval`` besides; any other every ``relist_interval``."""
        while True:
            try:
                containers = await self.driver.list_containers()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("runtime relist failed")
                containers = []
            per_pod: dict[str, list[tuple[str, str]]] = {}
            for st in containers:
                per_pod.setdefault(st.pod_uid, []).append((st.id, st.state.value))
            for uid, items in per_pod.items():
                fp = tuple(sorted(items))
                if self._fingerprints.get(uid) != fp:
                    self._fingerprints[uid] = fp
                    worker = self.workers.get(uid)
                    if worker is not None:
                        worker.wake()
            for uid in set(self._fingerprints) - set(per_pod):
                del self._fingerprints[uid]
            await self._until_changed()

    async def _until_changed(self) -> None:
        if not isinstance(self.driver, ContainerEvents):
            await asyncio.sleep(self.config.relist_interval)
            return
        try:
            async with asyncio.timeout(self.config.events_relist_interval):
                changed = await self.driver.changed()
        except TimeoutError:
            return
        for uid in changed:
            worker = self.workers.get(uid)
            if worker is not None:
                worker.wake()
