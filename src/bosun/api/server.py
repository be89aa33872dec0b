"""The API server's lifecycle: store, watch cache, encryption at rest, PKI, credentials,
HTTP listener, and the CRD controller that serves what the store's CRDs define. Garbage
collection and namespace deletion are controllers (:mod:`bosun.controllers`) run by the
control plane under its Lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bosun.api.admission import Caller, Webhooks
from bosun.api.admission.webhooksource import CachedWebhooks
from bosun.api.allocators import ServiceAllocator
from bosun.api.apf.dispatcher import process_share
from bosun.api.app import LOCAL_DISPATCHER, make_app
from bosun.api.catalog import Catalog
from bosun.api.crd.controller import DefinitionController
from bosun.api.defaults.storage import local_path_class
from bosun.api.errors import APIError
from bosun.api.instrumentation import APIMetrics
from bosun.api.local import LocalDispatcher
from bosun.api.nstracker import NamespaceTracker
from bosun.api.registry import STORED, by_plural
from bosun.api.rest import RestHandler
from bosun.api.storage import Storage
from bosun.api.swarm_endpoints import SwarmEndpoints
from bosun.api.watchcache import CachedEvent, WatchCache
from bosun.api.workers.handoff import Dispatcher, bind_listeners
from bosun.client.kubeconfig import write_kubeconfig
from bosun.monitoring.history import HistoryConfig
from bosun.monitoring.serving import Forward, ForwardedMonitoring, Monitoring, OwnMonitoring
from bosun.network.config import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, NetworkConfig
from bosun.security.cluster import ClusterIdentity, settle
from bosun.security.encryption import DecryptError, ResourceTransformer
from bosun.security.encryption import ensure_config as ensure_encryption_config
from bosun.security.encryption import load_config as load_encryption_config
from bosun.security.pki import ensure_pki
from bosun.security.satokens import ServiceAccountTokens
from bosun.security.tokens import TokenAuthenticator, ensure_admin_token
from bosun.store import open_store
from bosun.store.base import Store

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class ServerConfig:
    data_dir: Path
    listen: str = "127.0.0.1:6443"
    store_url: str = ""
    tls: bool = True
    # Extra names/IPs for the serving certificate (the listen host is always included).
    hosts: list[str] = field(default_factory=list)
    # kube-apiserver's --encryption-provider-config; default DATA_DIR/pki/encryption.yaml,
    # made with a fresh key at the first start (servers sharing a store must share it).
    encryption_config: Path | None = None
    # The cluster's network settings (--cluster-cidr, --service-cidr, ...): checked at start,
    # the service CIDR given to the cluster IP allocator, all published for the nodes.
    network: NetworkConfig = field(default_factory=NetworkConfig)
    # The manager join token: take the identity of the cluster already in the store
    # (bosun.security.cluster); "" to initialize it, or to keep this server's own.
    join_token: str = ""
    # A swarm manager serves the cluster's identity or refuses to start (never one of its own).
    swarm: bool = False
    # How long new pods tolerate a not-ready or unreachable node (kube-apiserver's
    # --default-not-ready/unreachable-toleration-seconds); a control plane sets its eviction timeout.
    default_toleration_seconds: int = 300
    # The metrics history (--metrics-retention, --metrics-resolution, --metrics-max-series).
    history: HistoryConfig = field(default_factory=HistoryConfig)
    # API processes (--api-workers): this one plus N-1 workers sharing its socket and store
    # (bosun.api.workers); started by the ControlPlane.
    api_workers: int = 1
    # kube-apiserver's --max-requests-inflight and --max-mutating-requests-inflight: their sum
    # is the server's concurrency limit that API Priority and Fairness shares out among the
    # priority levels, each API process taking its part (bosun.api.apf).
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    # kube-apiserver's --enable-priority-and-fairness (off: the max-in-flight limits instead).
    priority_and_fairness: bool = True

    @property
    def concurrency_limit(self) -> int:
        """This process's part of the server's concurrency limit."""
        return process_share(self.max_requests_inflight + self.max_mutating_requests_inflight, self.api_workers)

    @property
    def inflight_limits(self) -> tuple[int, int]:
        """This process's part of the max-in-flight limits (read-only, mutating), used when
        API Priority and Fairness is off."""
        return (process_share(self.max_requests_inflight, self.api_workers),
                process_share(self.max_mutating_requests_inflight, self.api_workers))

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class APIServer:
    def __init__(self, config: ServerConfig, *, store: Store | None = None,
                 sockets: list[socket.socket] | None = None, forward: Forward | None = None) -> None:
        """The API alone: deletion finishes (garbage collection, namespaces, CRDs) only with
        the control plane's collectors running beside it (:mod:`bosun.controlplane`).

        An API worker (bosun.api.workers) passes the ``store`` it reaches its owner's through,
        ``sockets`` to listen on (none: its owner hands it connections, :meth:`serve_accepted`)
        and ``forward``, where its monitoring requests go (the owner keeps the one metrics
        history); otherwise the server opens the store its config names, listens on its own and
        keeps the history itself."""
        self.config = config
        self._given_store = store
        self._given_sockets = sockets
        self._forward = forward
        # What answers the metrics history, query and metrics APIs, and this process's own
        # Prometheus metrics (set at start).
        self.monitoring: Monitoring | None = None
        self.instruments: APIMetrics | None = None
        # What this server listens on (none in an API worker: its owner hands it connections).
        self.listen_sockets: list[socket.socket] = []
        # With API workers (in their owner): what accepts connections and places them.
        self.dispatcher: Dispatcher | None = None
        self._ssl_ctx: ssl.SSLContext | None = None
        self.store: Store | None = None
        self.cache: WatchCache | None = None
        self.storage: Storage | None = None
        self.namespaces = NamespaceTracker()
        # What this server serves: the built-in kinds and its store's Established CRDs.
        self.catalog = Catalog()
        self.definitions: DefinitionController | None = None
        self._runner: web.AppRunner | None = None
        self.rest: RestHandler | None = None
        # In-process entry for components sharing this server's event loop (same API, no HTTP).
        self.local: LocalDispatcher | None = None
        self.url = ""
        self.kubeconfig = self.config.data_dir / "kubeconfig"
        self.token = ""
        # The identity shared with the cluster's other managers (None: this server's own).
        self.cluster: ClusterIdentity | None = None
        self._ca_pem = b""
        self._kubeconfig_others: list[str] | None = None
        # What calls the admission webhooks (its connections are closed on stop).
        self.webhook_caller = Caller()

    async def start(self) -> None:
        """Bring everything up; on any failure, release what was already started."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.config
        cfg.network.validate()  # before anything is made: a bad combination changes nothing
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = self._given_store or await open_store(cfg.store_url, cfg.data_dir)
        if cfg.tls:  # before anything reads the CA, tokens or encryption key: they may come from the store
            self.cluster = await settle(self.store, cfg.data_dir, cfg.join_token, cfg.encryption_config,
                                        own_identity=not cfg.swarm)
        encryption = load_encryption_config(cfg.encryption_config or ensure_encryption_config(cfg.data_dir))
        sealed = encryption.table(r.group_plural for r in STORED)
        self.cache = WatchCache(self.store)
        self.cache.sealed = sealed
        await self.cache.start()
        self.services = ServiceAllocator(self.store, cfg.network.service_cidr)
        # The admission webhooks' configurations, read from the cache (kept current by its events).
        configurations = CachedWebhooks(self.cache)
        self.cache.listeners.append(configurations.observe)
        self.storage = Storage(self.store, self.namespaces, sealed, services=self.services,
                               toleration_seconds=cfg.default_toleration_seconds,
                               webhooks=Webhooks(configurations, self.webhook_caller))
        self.storage.on_write = self.cache.remember
        self.storage.on_writing = self.cache.writing
        self.cache.listeners.append(self._observe)
        # Custom resources are served from the start (listening before listing: no CRD
        # event falls between the two).
        self.definitions = DefinitionController(self.storage, self.catalog)
        self.cache.listeners.append(self.definitions.observe)
        await self.definitions.start()
        await self._check_sealed(sealed)
        await self._load_namespaces()
        await self._ensure_system_namespaces()
        await self._publish_network()

        auth: TokenAuthenticator | None = None
        ssl_ctx: ssl.SSLContext | None = None
        scheme = "http"
        if cfg.tls:
            # The kubernetes Service's address too: pods reach the API through it and verify it.
            pki = ensure_pki(cfg.data_dir, [cfg.host, *cfg.hosts, self.services.first_ip])
            self.token = ensure_admin_token(cfg.data_dir)
            auth = TokenAuthenticator(cfg.data_dir)
            if self.cluster is not None:
                self.cluster.follow(auth)
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(pki.server_cert_path, pki.server_key_path)
            # Client certificates the cluster CA signed are credentials (bosun.security.x509auth).
            ssl_ctx.verify_mode = ssl.CERT_OPTIONAL
            ssl_ctx.load_verify_locations(pki.ca_cert_path)
            scheme = "https"
        self.rest = RestHandler(self.storage, self.cache, node_token=self.token, catalog=self.catalog,
                                service_accounts=ServiceAccountTokens(cfg.data_dir))
        swarm = SwarmEndpoints(self.cluster, cfg.store_url, self.storage, cfg.data_dir)
        app = make_app(self.rest, self.store, auth, swarm,
                       monitoring=self._make_monitoring,
                       concurrency_limit=cfg.concurrency_limit if cfg.priority_and_fairness else 0,
                       inflight=None if cfg.priority_and_fairness else cfg.inflight_limits)
        self.local = app[LOCAL_DISPATCHER]
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        self._ssl_ctx = ssl_ctx
        if self._given_sockets is not None:  # an API worker: its connections are handed to it
            for sock in self._given_sockets:
                await web.SockSite(self._runner, sock, ssl_context=ssl_ctx).start()
            self.listen_sockets = list(self._given_sockets)
        elif cfg.api_workers > 1:
            # This process accepts every connection and places each in an API process, in
            # turn by weight (bosun.api.workers.handoff); the pool adds workers as they serve.
            self.listen_sockets = bind_listeners(cfg.host, cfg.port)
            self.dispatcher = Dispatcher(self.listen_sockets, self.serve_accepted)
            self.dispatcher.start()
        else:
            site = web.TCPSite(self._runner, cfg.host, cfg.port, ssl_context=ssl_ctx, reuse_address=True)
            await site.start()
            server = site._server
            assert server is not None and hasattr(server, "sockets")
            self.listen_sockets = list(server.sockets)
        port = self.listen_sockets[0].getsockname()[1] if self.listen_sockets else cfg.port
        host = cfg.host if ":" not in cfg.host else f"[{cfg.host}]"
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
        self.url = f"{scheme}://{connect_host}:{port}"
        if cfg.tls:
            self._ca_pem = pki.ca_cert_pem
            if self._given_sockets is None:  # a worker's URL is its owner's: the owner writes it
                self.write_kubeconfig([])

    async def serve_accepted(self, sock: socket.socket) -> None:
        """Serve a connection accepted elsewhere (by this process's dispatcher, or by the
        store owner's, which handed it to this worker)."""
        assert self._runner is not None and self._runner.server is not None
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._runner.server, sock, ssl=self._ssl_ctx)
        except (OSError, ssl.SSLError, TimeoutError) as exc:  # a client gone or refused in its handshake
            log.debug("connection not served: %r", exc)
            sock.close()

    def _make_monitoring(self, instruments: APIMetrics) -> Monitoring:
        assert self.rest is not None
        self.instruments = instruments
        self.monitoring = (ForwardedMonitoring(self._forward) if self._forward is not None
                           else OwnMonitoring(self.rest, self.config.history, instruments.registry,
                                              self.config.data_dir))
        return self.monitoring

    def write_kubeconfig(self, others: list[str]) -> None:
        """The admin kubeconfig for this server, naming ``others`` (the cluster's other
        managers) to fall back on; rewritten only when they change."""
        if not self._ca_pem or others == self._kubeconfig_others:
            return
        write_kubeconfig(str(self.kubeconfig), server=self.url, ca_pem=self._ca_pem, token=self.token,
                         servers=others)
        self._kubeconfig_others = list(others)

    async def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.close()
            self.dispatcher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.cluster is not None:
            await self.cluster.stop()
        if self.rest is not None:
            await self.rest.close()
        await self.webhook_caller.close()
        if self.definitions is not None:
            await self.definitions.stop()
            self.definitions = None
        modified: list[str] = []
        if self.cache is not None:
            await self.cache.stop()
            if os.environ.get("BOSUN_CHECK_SHARED_OBJECTS") == "1":
                modified = self.cache.modified_objects()
                self.cache.buffer.clear()  # reported once
        if self.store is not None:
            await self.store.close()
            self.store = None
        if modified:
            log.error("shared objects were modified in place: %s", ", ".join(modified[:20]))
            raise RuntimeError(f"{len(modified)} objects shared by the watch cache were modified in place: "
                               f"{', '.join(modified[:5])}")

    async def _check_sealed(self, sealed: dict[str, ResourceTransformer]) -> None:
        """Say at start, not at the first failed read, that stored values need a key this
        server lacks: the usual cause is servers on one etcd with different key files."""
        assert self.store is not None
        for gp, t in sealed.items():
            kvs, _ = await self.store.list(f"/registry/{gp}/")
            failures: list[str] = []
            for kv in kvs:
                try:
                    t.from_store(kv.key, kv.value)
                except DecryptError as exc:
                    failures.append(str(exc))
            if failures:
                log.error("%d of %d stored %s cannot be decrypted, e.g. %s. Servers sharing a store need "
                          "the same encryption configuration file.", len(failures), len(kvs), gp, failures[0])

    def _observe(self, ev: CachedEvent) -> None:
        if ev.group_plural == "namespaces":
            name = ev.key.rsplit("/", 1)[-1]
            self.namespaces.observe(None if ev.type == "DELETED" else ev.obj, name, ev.type == "DELETED")

    async def _load_namespaces(self) -> None:
        assert self.storage is not None
        res = by_plural("", "v1", "namespaces")
        assert res is not None
        items, _, _ = await self.storage.list(res, None)
        for ns in items:
            self.namespaces.observe(ns, ns["metadata"]["name"], False)

    async def _ensure_system_namespaces(self) -> None:
        assert self.storage is not None
        res = by_plural("", "v1", "namespaces")
        assert res is not None
        for name in SYSTEM_NAMESPACES:
            if name in self.namespaces.phase:
                continue
            obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            with contextlib.suppress(APIError):
                created = await self.storage.create(res, None, obj)
                self.namespaces.observe(created, name, False)
        svc_res = by_plural("", "v1", "services")
        assert svc_res is not None
        kubernetes = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": self.services.first_ip,
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": self.config.port or 6443}]},
        }
        with contextlib.suppress(APIError):  # present already after the first start
            await self.storage.create(svc_res, "default", kubernetes)
        sc_res = by_plural("storage.k8s.io", "v1", "storageclasses")
        assert sc_res is not None
        with contextlib.suppress(APIError):  # the default class for claims; present after the first start
            await self.storage.create(sc_res, None, local_path_class())

    async def _publish_network(self) -> None:
        """Write the network settings to ConfigMap kube-system/bosun-network (made, or
        updated when this server was started with other flags), where nodes read them."""
        assert self.storage is not None
        res = by_plural("", "v1", "configmaps")
        assert res is not None
        data = self.config.network.to_data()
        try:
            have = await self.storage.get(res, CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)
        except APIError as exc:
            if exc.code != 404:
                raise
            obj = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": CONFIGMAP_NAME, "namespace": CONFIGMAP_NAMESPACE}, "data": data}
            with contextlib.suppress(APIError):  # another server of this store made it first
                await self.storage.create(res, CONFIGMAP_NAMESPACE, obj)
            return
        if have.get("data") != data:
            log.warning("network settings changed: %s -> %s", have.get("data"), data)

            def put(current: dict[str, Any]) -> dict[str, Any]:
                current["data"] = data
                return current

            await self.storage.mutate(res, CONFIGMAP_NAMESPACE, CONFIGMAP_NAME, put)


async def serve_forever(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Run until cancelled (the CLI cancels on SIGINT/SIGTERM)."""
    server = APIServer(config)
    await server.start()
    try:
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await server.stop()
