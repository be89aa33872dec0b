"""The node's DNS server over real sockets: a real API server and informers feed it, real
UDP and TCP queries reach it from a client namespace, and names outside the cluster go to
an upstream DNS server in a third namespace.

    client ns 10.53.0.2 --veth-- 10.53.0.1 (DNS, API on lo) server ns 10.53.1.1 --veth-- 10.53.1.2 upstream ns
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, DNSRecord
from tests.conftest import start_server
from tests.integration.dns_env import Netns, Upstream, entered, in_thread, link, namespaces
from tests.integration.helpers import client_for, create_namespace

from bosun.client.rest import Client
from bosun.client.shared import SharedInformers
from bosun.controllers._common import resource
from bosun.network.config import NetworkConfig
from bosun.network.dns.component import NodeDNS

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")]

SERVICES = resource("", "v1", "services")
SLICES = resource("discovery.k8s.io", "v1", "endpointslices")
DNS = "10.53.0.1"
UPSTREAM = "10.53.1.2"


@dataclass
class World:
    client: Client
    dns: NodeDNS
    cli: Netns
    upstream: Upstream
    ns: str

    def query(self, name: str, qtype: str = "A", *, tcp: bool = False) -> DNSRecord:
        """A query from the client namespace, over UDP or TCP, as a pod's resolver sends it."""
        def ask() -> DNSRecord:
            return DNSRecord.parse(DNSRecord.question(name, qtype).send(DNS, 53, tcp=tcp, timeout=3))
        return in_thread(self.cli, ask)

    async def aquery(self, name: str, qtype: str = "A", *, tcp: bool = False) -> DNSRecord:
        return await asyncio.to_thread(self.query, name, qtype, tcp=tcp)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    with namespaces("srv", "cli", "up") as ns:
        link(ns["srv"], "10.53.1.1/24", ns["up"], f"{UPSTREAM}/24")
        upstream = Upstream(ns["up"], UPSTREAM, {"example.test": "192.0.2.7", "search.example.test": "192.0.2.8"})
        try:
            with entered(ns["srv"]):  # the API server's thread and the DNS sockets are born in srv
                server = start_server(tmp_path / "server")
                client = client_for(server)
                informers = SharedInformers(client)
                dns = NodeDNS(informers, NetworkConfig(), DNS, upstreams=[UPSTREAM])
                try:
                    await dns.start()
                    assert dns.server is not None
                    # The address appears after the server bound it (as the pod bridge does
                    # with the first pod): IP_FREEBIND.
                    link(ns["srv"], f"{DNS}/24", ns["cli"], "10.53.0.2/24")
                    name = f"dns-{time.time_ns() % 10**8}"
                    await create_namespace(client, name)
                    yield World(client, dns, ns["cli"], upstream, name)
                finally:
                    await dns.stop()
                    await informers.stop()
                    await client.close()
                    server.stop()
        finally:
            upstream.stop()


def service(name: str, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": ports, **spec}}


async def answers(w: World, name: str, qtype: str = "A", *, tcp: bool = False) -> list[str]:
    reply = await w.aquery(name, qtype, tcp=tcp)
    return [str(rr.rdata) for rr in reply.rr if QTYPE.get(rr.rtype) == qtype]


async def test_cluster_names_over_udp_and_tcp(world: World) -> None:
    w = world
    svc = await w.client.create(SERVICES, service("web", [{"name": "http", "port": 80, "targetPort": 8080}]), w.ns)
    ip = svc["spec"]["clusterIP"]
    fqdn = f"web.{w.ns}.svc.cluster.local"
    deadline = time.monotonic() + 5
    while await answers(w, fqdn) != [ip]:
        assert time.monotonic() < deadline, "the Service never resolved"
    for tcp in (False, True):
        reply = await w.aquery(fqdn.upper(), tcp=tcp)
        assert reply.header.rcode == 0 and reply.header.aa == 1
        assert [(str(rr.rname), str(rr.rdata)) for rr in reply.rr] == [(fqdn.upper() + ".", ip)]  # the asker's case
        assert await answers(w, f"_http._tcp.{fqdn}", "SRV", tcp=tcp) == [f"0 100 80 {fqdn}."]
        rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"
        assert await answers(w, rev, "PTR", tcp=tcp) == [fqdn + "."]
        missing = await w.aquery(f"nope.{w.ns}.svc.cluster.local", tcp=tcp)
        assert missing.header.rcode == 3 and QTYPE.get(missing.auth[0].rtype) == "SOA"
        empty = await w.aquery(fqdn, "AAAA", tcp=tcp)
        assert empty.header.rcode == 0 and not empty.rr
    assert await answers(w, "kubernetes.default.svc.cluster.local") == [
        (await w.client.get(SERVICES, "kubernetes", namespace="default"))["spec"]["clusterIP"]]


async def test_headless_statefulset_names_follow_endpointslices(world: World) -> None:
    w = world
    await w.client.create(SERVICES, service("db", [{"name": "pg", "port": 5432}], clusterIP="None"), w.ns)
    sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
          "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
          "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
          "endpoints": [{"addresses": ["10.244.0.10"], "hostname": "db-0", "conditions": {"ready": True}}]}
    sl = await w.client.create(SLICES, sl, w.ns)
    fqdn = f"db.{w.ns}.svc.cluster.local"
    deadline = time.monotonic() + 5
    while await answers(w, fqdn) != ["10.244.0.10"]:
        assert time.monotonic() < deadline
    assert await answers(w, f"db-0.{fqdn}") == ["10.244.0.10"]
    assert await answers(w, f"_pg._tcp.{fqdn}", "SRV") == [f"0 100 5432 db-0.{fqdn}."]
    # A second pod becomes ready: seen within a second of the slice's change.
    sl["endpoints"].append({"addresses": ["10.244.0.11"], "hostname": "db-1", "conditions": {"ready": True}})
    await w.client.update(SLICES, sl)
    t0 = time.monotonic()
    while await answers(w, fqdn) != ["10.244.0.10", "10.244.0.11"]:
        assert time.monotonic() - t0 < 1.0, "the EndpointSlice change took more than a second"
    assert await answers(w, f"db-1.{fqdn}") == ["10.244.0.11"]


async def test_service_changes_are_answered_within_a_second(world: World) -> None:
    w = world
    fqdn = f"late.{w.ns}.svc.cluster.local"
    assert (await w.aquery(fqdn)).header.rcode == 3  # and now that NXDOMAIN is in the answer cache
    t0 = time.monotonic()
    svc = await w.client.create(SERVICES, service("late", [{"port": 80}]), w.ns)
    while await answers(w, fqdn) != [svc["spec"]["clusterIP"]]:
        assert time.monotonic() - t0 < 1.0, "a new Service took more than a second to resolve"
    await w.client.delete(SERVICES, "late", namespace=w.ns)
    t0 = time.monotonic()
    while (await w.aquery(fqdn)).header.rcode != 3:
        assert time.monotonic() - t0 < 1.0, "a deleted Service still resolved after a second"


async def test_other_names_are_forwarded_upstream_and_cached(world: World) -> None:
    w = world
    for tcp in (False, True):
        assert await answers(w, "example.test", tcp=tcp) == ["192.0.2.7"]
        assert (await w.aquery("missing.example.test", tcp=tcp)).header.rcode == 3
    before = len(w.upstream.asked)
    assert await answers(w, "example.test") == ["192.0.2.7"]
    assert len(w.upstream.asked) == before, "a repeated question should be answered from the cache"
    # An ExternalName Service: the CNAME, then its target's address, fetched upstream.
    await w.client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "search"},
                                     "spec": {"type": "ExternalName", "externalName": "search.example.test"}}, w.ns)
    name = f"search.{w.ns}.svc.cluster.local"
    deadline = time.monotonic() + 5
    while True:
        reply = await w.aquery(name)
        if reply.rr:
            break
        assert time.monotonic() < deadline
    assert [(QTYPE.get(rr.rtype), str(rr.rdata)) for rr in reply.rr] == [
        ("CNAME", "search.example.test."), ("A", "192.0.2.8")]


async def test_no_upstream_answers_servfail(world: World) -> None:
    w = world
    w.upstream.stop()
    assert w.dns.server is not None
    w.dns.server.forwarder.timeout = 0.3
    reply = await w.aquery("other.example.test")
    assert reply.header.rcode == 2  # SERVFAIL, not a hang
    # Cluster names still answer without the upstream.
    assert (await w.aquery(f"x.{w.ns}.svc.cluster.local")).header.rcode == 3
