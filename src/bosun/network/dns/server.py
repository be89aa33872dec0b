"""The DNS server: UDP and TCP on one address, cluster names from :class:`Records`, the
rest through the :class:`Forwarder`.

Cluster answers are kept, packed, by the query's bytes (ID aside) until the caches change:
a repeated question costs one dict lookup and a send, which is what lets one Python
process answer thousands of queries a second. Any Service or EndpointSlice event empties
that cache (:meth:`DnsServer.invalidate`), so an answer never outlives the object it came from.

The sockets are bound with ``IP_FREEBIND``: the address is the pod bridge's, which the CNI
bridge plugin creates with the node's first pod. Binding before it exists means the server
is ready before any pod, and nothing here competes with CNI for owning the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Any, cast

from dnslib import AAAA, CNAME, EDNS0, PTR, QTYPE, RCODE, RR, SOA, SRV, A, DNSError, DNSRecord
from dnslib import DNSLabel as Label

from bosun.network.dns.forward import Forwarder
from bosun.network.dns.records import SERVFAIL, Answer, Record, Records, Srv

log = logging.getLogger(__name__)

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux's value; Python names it from 3.12
PLAIN_UDP_SIZE = 512
OUR_UDP_SIZE = 1232  # the EDNS payload size DNS Flag Day 2020 settled on: no IP fragments
CACHE_ENTRIES = 20_000
TCP_IDLE = 10.0
SOA_TIMES = (1, 7200, 1800, 86400, 5)  # serial, refresh, retry, expire, negative TTL (CoreDNS's)
_RDATA: dict[str, Any] = {"A": A, "AAAA": AAAA, "CNAME": CNAME, "PTR": PTR}


class DnsServer:
    def __init__(self, records: Records, forwarder: Forwarder, host: str, port: int = 53) -> None:
        self.records = records
        self.forwarder = forwarder
        self.host = host
        self.port = port
        self._cache: dict[bytes, bytes] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp = _socket(socket.SOCK_DGRAM, self.host, self.port)
        try:
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
            if not self.port:
                self.port = udp.getsockname()[1]
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=_socket(socket.SOCK_STREAM, self.host,
                                                                                 self.port))
        except BaseException:
            udp.close()
            raise

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
            self._tcp = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def invalidate(self, *_objs: Any) -> None:
        """The caches changed: forget every packed cluster answer (an informer handler)."""
        self._cache.clear()

    # -- answering --------------------------------------------------------------------------

    def answer_now(self, query: bytes, *, tcp: bool) -> bytes | None:
        """The answer if it needs no upstream (cached, cluster, or malformed), else None."""
        cached = self._cache.get(query[2:]) if not tcp else None
        if cached is not None:
            return query[:2] + cached
        try:
            msg = DNSRecord.parse(query)
        except (DNSError, IndexError, struct.error, UnicodeDecodeError):
            return _formerr(query)
        if msg.header.qr or len(msg.questions) != 1:
            return _formerr(query) if not msg.header.qr else b""
        q = msg.q
        found = self.records.lookup(str(q.qname), QTYPE.get(q.qtype, str(q.qtype)))
        if found is None or found.chase:
            return None
        wire = self._pack(msg, found, tcp)
        if not tcp:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[query[2:]] = wire[2:]
        return wire

    async def answer(self, query: bytes, *, tcp: bool) -> bytes:
        now = self.answer_now(query, tcp=tcp)
        if now is not None:
            return now
        msg = DNSRecord.parse(query)
        found = self.records.lookup(str(msg.q.qname), QTYPE.get(msg.q.qtype, str(msg.q.qtype)))
        if found is None:
            relayed = await self.forwarder.resolve(query, tcp=tcp)
            return relayed if relayed is not None else self._pack(msg, Answer(rcode=SERVFAIL), tcp)
        # An ExternalName pointing outside: the CNAME, then the target's records from upstream.
        target = DNSRecord.question(found.chase, QTYPE.get(msg.q.qtype, "A"))
        relayed = await self.forwarder.resolve(target.pack(), tcp=tcp)
        extra: list[RR] = []
        if relayed is not None:
            with contextlib.suppress(DNSError, IndexError, struct.error):
                extra = DNSRecord.parse(relayed).rr
        return self._pack(msg, found, tcp, extra)

    def _pack(self, msg: DNSRecord, found: Answer, tcp: bool, extra: list[RR] | None = None) -> bytes:
        reply = msg.reply(ra=1, aa=1 if found.rcode != SERVFAIL else 0)
        reply.header.rcode = found.rcode
        asked = str(msg.q.qname).lower()
        for rec in found.answer:
            reply.add_answer(_rr(rec, msg.q.qname if rec.name == asked else None))
        for rr in extra or []:
            reply.add_answer(rr)
        for rec in found.authority:
            reply.add_auth(_rr(rec, None))
        for rec in found.additional:
            reply.add_ar(_rr(rec, None))
        edns = [rr for rr in msg.ar if rr.rtype == QTYPE.OPT]
        if edns:
            reply.add_ar(EDNS0(udp_len=OUR_UDP_SIZE))
        wire: bytes = reply.pack()
        limit = min(max(edns[0].rclass, PLAIN_UDP_SIZE), OUR_UDP_SIZE) if edns else PLAIN_UDP_SIZE
        if not tcp and len(wire) > limit:
            reply = msg.reply(ra=1, aa=1)
            reply.header.rcode = found.rcode
            reply.header.tc = 1
            wire = reply.pack()
        return wire

    # -- transports -------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))
                query = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE)
                wire = await self.answer(query, tcp=True)
                if wire:
                    writer.write(struct.pack("!H", len(wire)) + wire)
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, DNSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _later(self, query: bytes, addr: tuple[str, int]) -> None:
        async def run() -> None:
            try:
                wire = await self.answer(query, tcp=False)
            except (DNSError, OSError) as e:
                log.debug("query from %s failed: %s", addr, e)
                return
            if self._udp is not None and wire:
                self._udp.sendto(wire, addr)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        wire = self.server.answer_now(data, tcp=False)
        if wire is None:
            self.server._later(data, addr)
        elif wire and self.transport is not None:
            self.transport.sendto(wire, addr)


def _socket(kind: socket.SocketKind, host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _rr(rec: Record, name: Label | None) -> RR:
    rname = name if name is not None else Label(rec.name)
    data = rec.data
    if isinstance(data, Srv):
        return RR(rname, QTYPE.SRV, ttl=rec.ttl, rdata=SRV(data.priority, data.weight, data.port, data.target))
    rdata = SOA(data, "hostmaster." + rec.name, SOA_TIMES) if rec.type == "SOA" else _RDATA[rec.type](data)
    return RR(rname, getattr(QTYPE, rec.type), ttl=rec.ttl, rdata=rdata)


def _formerr(query: bytes) -> bytes:
    """FORMERR with the query's ID (header only: the question could not be read)."""
    flags = 0x8000 | (query[2] & 0x79) << 8 | RCODE.FORMERR if len(query) >= 4 else 0x8000 | RCODE.FORMERR
    return query[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)
