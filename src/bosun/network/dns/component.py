"""Cluster DNS as a node component: each agent answers its own pods (NodeLocal DNSCache's
design, without a DNS Service to reach: no extra hop, no DNAT, no conntrack race on UDP).

It listens on the pod bridge's address (``gateway(pod_cidr)``, port 53 over UDP and TCP),
which every pod on the node reaches directly and which the pods' resolv.conf names
(:func:`bosun.agent.podspec.dns_config`). That address rather than Docker's 127.0.0.11
inside each pod: one socket for the node instead of one per pod namespace, and nothing to
enter or clean up in each pod. The bridge appears with the first pod; the sockets are bound
with IP_FREEBIND (see :mod:`.server`), so DNS is ready before it.

The records come from the shared Service and EndpointSlice informers; every event of
either empties the server's answer cache, so a change answers at once. Names outside the
cluster go to ``upstreams`` (``bosun agent --upstream-dns``), by default the node's own
resolv.conf nameservers (minus our own address, which would loop).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bosun.api.registry import must_by_plural
from bosun.client.shared import SharedInformers
from bosun.network.config import NetworkConfig
from bosun.network.dns.forward import Forwarder, resolv_conf_nameservers, upstream_address
from bosun.network.dns.records import SERVICE_INDEXES, SLICE_INDEXES, Records
from bosun.network.dns.server import DnsServer

log = logging.getLogger(__name__)

SERVICES = must_by_plural("", "v1", "services")
SLICES = must_by_plural("discovery.k8s.io", "v1", "endpointslices")
DNS_PORT = 53


class NodeDNS:
    def __init__(self, informers: SharedInformers, network: NetworkConfig, address: str, *,
                 upstreams: Sequence[str] = (), port: int = DNS_PORT) -> None:
        self.informers = informers
        self.network = network
        self.address = address
        self.port = port
        self.given_upstreams = list(upstreams)
        self.server: DnsServer | None = None

    def upstreams(self) -> list[tuple[str, int]]:
        out = []
        for text in self.given_upstreams or resolv_conf_nameservers():
            try:
                address = upstream_address(text)
            except ValueError as e:
                log.warning("cluster DNS: %s (skipped)", e)
                continue
            if address != (self.address, self.port):
                out.append(address)
        return out

    async def start(self) -> None:
        services, slices = self.informers.get(SERVICES), self.informers.get(SLICES)
        for informer, indexes in ((services, SERVICE_INDEXES), (slices, SLICE_INDEXES)):
            for name, fn in indexes.items():
                informer.add_index(name, fn)
        net = self.network
        records = Records(services, slices, domain=net.cluster_domain, service_cidr=net.service_cidr,
                          cluster_cidr=net.cluster_cidr)
        server = DnsServer(records, Forwarder(self.upstreams()), self.address, self.port)
        for informer in (services, slices):
            informer.add_handler(server.invalidate, server.invalidate, server.invalidate)
        await self.informers.start()
        try:
            await server.start()
        except OSError as e:
            # The node still runs pods (by address); say why names do not resolve there.
            log.error("cluster DNS cannot listen on %s:%s: %s", self.address, self.port, e)
            return
        self.server = server
        log.info("cluster DNS for %s on %s:%s, upstream %s", net.cluster_domain, self.address, self.port,
                 server.forwarder.upstreams)

    async def stop(self, *, remove: bool = False) -> None:
        """Nothing is left behind on the node (two sockets), so ``remove`` changes nothing."""
        if self.server is not None:
            await self.server.stop()
            self.server = None
