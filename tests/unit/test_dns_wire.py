"""The server's answers as bytes: what dnslib (an independent reader) makes of them, EDNS and
truncation, the answer cache, and messages that are not plain queries."""

from __future__ import annotations

import asyncio
import copy
import struct

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSHeader, DNSQuestion, DNSRecord
from tests.unit.test_dns_records import SERVICES, SLICES, ListStore

from bosun.network.dns.forward import Forwarder
from bosun.network.dns.records import SERVICE_INDEXES, SLICE_INDEXES, Records
from bosun.network.dns.server import DnsServer
from bosun.network.dns.wire import read_query


@pytest.fixture
def server() -> DnsServer:
    records = Records(ListStore(copy.deepcopy(SERVICES), SERVICE_INDEXES),
                      ListStore(copy.deepcopy(SLICES), SLICE_INDEXES), domain="cluster.local",
                      service_cidr="10.96.0.0/16", cluster_cidr="10.244.0.0/16")
    return DnsServer(records, Forwarder([]), "127.0.0.1")


def ask(server: DnsServer, query: DNSRecord | bytes, *, tcp: bool = False) -> DNSRecord:
    wire = server.answer_now(bytes(query.pack()) if isinstance(query, DNSRecord) else query, tcp=tcp)
    assert wire, "expected an answer without going upstream"
    return DNSRecord.parse(wire)


def test_answers_read_back_with_dnslib(server: DnsServer) -> None:
    q = DNSRecord.question("Web.Shop.svc.cluster.local")
    reply = ask(server, q)
    assert reply.header.id == q.header.id and reply.header.qr and reply.header.aa and reply.header.ra
    assert reply.header.rd == q.header.rd and reply.header.rcode == RCODE.NOERROR
    assert str(reply.q.qname) == "Web.Shop.svc.cluster.local."
    assert [(str(rr.rname), QTYPE[rr.rtype], rr.ttl, str(rr.rdata)) for rr in reply.rr] == [
        ("Web.Shop.svc.cluster.local.", "A", 5, "10.96.0.20")]
    srv = ask(server, DNSRecord.question("_pg._tcp.db.shop.svc.cluster.local", "SRV"))
    assert [str(rr.rdata) for rr in srv.rr] == ["0 50 5432 db-0.db.shop.svc.cluster.local.",
                                                "0 50 5432 db-1.db.shop.svc.cluster.local."]
    assert sorted(str(rr.rdata) for rr in srv.ar) == ["10.244.1.10", "10.244.2.11"]
    ptr = ask(server, DNSRecord.question("20.0.96.10.in-addr.arpa", "PTR"))
    assert [str(rr.rdata) for rr in ptr.rr] == ["web.shop.svc.cluster.local."]
    cname = ask(server, DNSRecord.question("alias.shop.svc.cluster.local"))
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in cname.rr] == [
        ("CNAME", "web.shop.svc.cluster.local."), ("A", "10.96.0.20")]
    nx = ask(server, DNSRecord.question("nope.shop.svc.cluster.local"))
    assert nx.header.rcode == RCODE.NXDOMAIN and not nx.rr
    soa = nx.auth[0]
    assert QTYPE[soa.rtype] == "SOA" and str(soa.rname) == "cluster.local."
    assert str(soa.rdata.mname) == "ns.dns.cluster.local." and soa.rdata.times[-1] == 5


def test_edns_and_truncation(server: DnsServer) -> None:
    big = [{"addresses": [f"10.244.7.{i}"], "conditions": {"ready": True}} for i in range(1, 120)]
    server.records.slices.objs[("shop", "big")] = {  # type: ignore[attr-defined]
        "addressType": "IPv4", "metadata": {"name": "big", "namespace": "shop",
                                            "labels": {"kubernetes.io/service-name": "db"}},
        "endpoints": big, "ports": []}
    q = DNSRecord.question("db.shop.svc.cluster.local")
    plain = ask(server, q)
    assert plain.header.tc and not plain.rr  # 121 addresses do not fit in 512 bytes: ask over TCP
    full = ask(server, q, tcp=True)
    assert not full.header.tc and len(full.rr) == 121
    q.add_ar(EDNS0(udp_len=4096))
    edns = ask(server, q)
    assert edns.header.tc and [QTYPE[rr.rtype] for rr in edns.ar] == ["OPT"]  # still > our 1232 bytes
    small = DNSRecord.question("web.shop.svc.cluster.local")
    small.add_ar(EDNS0(udp_len=4096))
    reply = ask(server, small)
    assert not reply.header.tc and reply.ar[0].rclass == 1232


def test_repeated_questions_come_from_the_cache_until_invalidated(server: DnsServer) -> None:
    q = DNSRecord.question("web.shop.svc.cluster.local")
    first = ask(server, q)
    server.records.services.objs[("shop", "web")]["spec"]["clusterIP"] = "10.96.0.99"  # type: ignore[attr-defined]
    server.records.services.objs[("shop", "web")]["spec"]["clusterIPs"] = ["10.96.0.99"]  # type: ignore[attr-defined]
    q.header.id = 4242
    again = ask(server, q)
    assert again.header.id == 4242 and str(again.rr[0].rdata) == str(first.rr[0].rdata)
    server.invalidate()  # what an informer event does
    assert str(ask(server, q).rr[0].rdata) == "10.96.0.99"


def test_unusual_encodings_are_answered_the_same(server: DnsServer) -> None:
    # Two additional records (an OPT and an A) are not the fast reader's shape.
    q = DNSRecord.question("web.shop.svc.cluster.local")
    q.add_ar(EDNS0())
    q.add_ar(RR("extra.example", QTYPE.A, rdata=A("192.0.2.1")))
    assert read_query(bytes(q.pack())) is None
    reply = ask(server, q)
    assert reply.header.id == q.header.id and [str(rr.rdata) for rr in reply.rr] == ["10.96.0.20"]
    # A compression pointer in the question's name is not either (it goes the same slow way).
    raw = bytes(DNSRecord.question("web.shop.svc.cluster.local").pack())
    assert read_query(raw[:12] + b"\x03web\xc0\x0c" + raw[-4:]) is None


def test_messages_that_are_not_plain_queries(server: DnsServer) -> None:
    garbage = b"\x12\x34" + b"\x01\x00\x00\x01" + b"\xff" * 10
    reply = DNSRecord.parse(server.answer_now(garbage, tcp=False) or b"")
    assert reply.header.id == 0x1234 and reply.header.rcode == RCODE.FORMERR
    response = DNSRecord.question("web.shop.svc.cluster.local").reply()
    assert server.answer_now(bytes(response.pack()), tcp=False) == b""  # answers are not answered
    chaos = DNSRecord(DNSHeader(id=7), q=DNSQuestion("version.bind", QTYPE.TXT, 3))
    assert ask(server, chaos).header.rcode == RCODE.NOTIMP
    notify = DNSRecord(DNSHeader(id=8, opcode=4), q=DNSQuestion("cluster.local", QTYPE.SOA))
    assert ask(server, notify).header.rcode == RCODE.NOTIMP
    two = bytes(DNSRecord.question("a.cluster.local").pack())
    two = two[:4] + struct.pack("!H", 2) + two[6:] + two[12:]
    assert ask(server, two).header.rcode in (RCODE.NOTIMP, RCODE.FORMERR)


def test_outside_names_are_left_for_the_forwarder(server: DnsServer) -> None:
    assert server.answer_now(bytes(DNSRecord.question("example.com").pack()), tcp=False) is None
    assert server.answer_now(bytes(DNSRecord.question("search.shop.svc.cluster.local").pack()), tcp=False) is None


async def test_an_object_the_lookup_cannot_read_answers_servfail_over_loopback(server: DnsServer) -> None:
    server.records.slices.objs[("shop", "bad")] = {  # type: ignore[attr-defined]
        "addressType": "IPv4", "metadata": {"name": "bad", "namespace": "shop",
                                            "labels": {"kubernetes.io/service-name": "db"}},
        "endpoints": [{"addresses": ["10.244.9.9"]}], "ports": [{"name": "pg", "port": "not-a-number"}]}
    server.port = 0
    await server.start()

    def query(name: str, tcp: bool = False) -> DNSRecord:
        return DNSRecord.parse(DNSRecord.question(name).send("127.0.0.1", server.port, tcp=tcp, timeout=3))

    try:
        for tcp in (False, True):
            reply = await asyncio.to_thread(query, "db.shop.svc.cluster.local", tcp)
            assert reply.header.rcode == RCODE.SERVFAIL
        # Other names still answer.
        reply = await asyncio.to_thread(query, "web.shop.svc.cluster.local")
        assert [str(rr.rdata) for rr in reply.rr] == ["10.96.0.20"]
    finally:
        await server.stop()
