"""The DNS server: UDP and TCP on one address, cluster names from :class:`Records`, the
rest through the :class:`Forwarder`.

Cluster answers are kept, packed, by the query's bytes (ID aside) until the caches change:
a repeated question costs one dict lookup and a send, which is what lets one Python
process answer thousands of queries a second. Any Service or EndpointSlice event empties
that cache (:meth:`DnsServer.invalidate`), so an answer never outlives the object it came from.

The sockets are bound with ``IP_FREEBIND``: the address is the pod bridge's, which may not
be on the node yet (see :mod:`.component`); the server is ready before it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Any, cast

from dnslib import QTYPE, RCODE, DNSError, DNSHeader, DNSQuestion, DNSRecord

from bosun.network.dns.forward import Forwarder
from bosun.network.dns.records import SERVFAIL, Answer, Record, Records
from bosun.network.dns.wire import CLASS_IN, Query, read_query, write_answer

log = logging.getLogger(__name__)

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux's value; Python names it from 3.12
CACHE_ENTRIES = 20_000
TCP_IDLE = 10.0
CHASED = ("A", "AAAA", "CNAME")  # what an ExternalName's upstream answer contributes


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
        """The answer if it needs no upstream (cached, cluster, or malformed; ``b""`` for a
        message to drop), else None: the caller awaits :meth:`answer`."""
        cached = self._cache.get(query[2:]) if not tcp else None
        if cached is not None:
            return query[:2] + cached
        q = read_query(query)
        if q is None:
            return self._unusual(query, tcp)
        found = self.records.lookup(q.name, q.type_name)
        if found is None or found.chase:
            return None
        wire = self._write(q, found, tcp)
        if not tcp:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[query[2:]] = wire[2:]
        return wire

    async def answer(self, query: bytes, *, tcp: bool) -> bytes:
        now = self.answer_now(query, tcp=tcp)
        if now is not None:
            return now
        q = read_query(query)
        if q is None:  # asked in an unusual encoding: _plain made it a plain query
            plain = _plain(query)
            assert isinstance(plain, bytes)
            query, q = plain, read_query(plain)
            assert q is not None
        found = self.records.lookup(q.name, q.type_name)
        if found is None:
            relayed = await self.forwarder.resolve(query, tcp=tcp)
            return relayed if relayed is not None else self._write(q, Answer(rcode=SERVFAIL), tcp)
        # An ExternalName pointing outside: the CNAME, then the target's records from upstream.
        relayed = await self.forwarder.resolve(DNSRecord.question(found.chase, q.type_name).pack(), tcp=tcp)
        if relayed is not None:
            with contextlib.suppress(DNSError, IndexError, struct.error):
                found.answer += [Record(str(rr.rname).lower(), QTYPE[rr.rtype], str(rr.rdata), rr.ttl)
                                 for rr in DNSRecord.parse(relayed).rr if QTYPE.get(rr.rtype) in CHASED]
        return self._write(q, found, tcp)

    @staticmethod
    def _write(q: Query, found: Answer, tcp: bool) -> bytes:
        try:
            return write_answer(q, found, udp=not tcp)
        except (ValueError, OSError) as e:  # a name or address in an object the API let through
            log.warning("cannot answer %s: %s", q.name, e)
            return write_answer(q, Answer(rcode=SERVFAIL), udp=not tcp)

    def _unusual(self, query: bytes, tcp: bool) -> bytes | None:
        """A message the fast reader did not take (see :func:`_plain`)."""
        plain = _plain(query)
        return self.answer_now(plain, tcp=tcp) if isinstance(plain, bytes) else plain.wire

    # -- transports -------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))
                query = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE)
                try:
                    wire = await self.answer(query, tcp=True)
                except Exception:
                    log.exception("cluster DNS: query over TCP failed")
                    wire = _error(query, RCODE.SERVFAIL)
                if wire:
                    writer.write(struct.pack("!H", len(wire)) + wire)
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, DNSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def later(self, query: bytes, addr: tuple[str, int]) -> None:
        """Answer ``query`` from ``addr`` once the upstream has (a task of its own)."""
        async def run() -> None:
            try:
                wire = await self.answer(query, tcp=False)
            except Exception:
                log.exception("cluster DNS: query from %s failed", addr)
                wire = _error(query, RCODE.SERVFAIL)
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
        try:
            wire = self.server.answer_now(data, tcp=False)
        except Exception:  # an object the lookup did not expect: SERVFAIL, not a client timing out
            log.exception("cluster DNS: query failed")
            wire = _error(data, RCODE.SERVFAIL)
        if wire is None:
            self.server.later(data, addr)
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


@dataclass(frozen=True)
class _Reply:
    wire: bytes  # an error answer, or b"" for a message to drop


def _plain(query: bytes) -> bytes | _Reply:
    """A query the fast reader did not take, read with dnslib: a plain question in another
    encoding (a compressed name, several additional records) is asked again in the plain
    one; anything else is answered FORMERR, NOTIMP or REFUSED, and answers are dropped."""
    try:
        msg = DNSRecord.parse(query)
    except (DNSError, IndexError, struct.error, UnicodeDecodeError, ValueError):
        return _Reply(_error(query, RCODE.FORMERR))
    if msg.header.qr:
        return _Reply(b"")
    if msg.header.opcode != 0 or len(msg.questions) != 1 or msg.q.qclass != CLASS_IN:
        return _Reply(_error(query, RCODE.NOTIMP))
    again = bytes(DNSRecord(DNSHeader(id=msg.header.id, rd=msg.header.rd),
                            q=DNSQuestion(msg.q.qname, msg.q.qtype)).pack())
    if read_query(again) is None:
        return _Reply(_error(query, RCODE.REFUSED))  # a label with a dot or a byte outside ASCII
    return again


def _error(query: bytes, rcode: int) -> bytes:
    """A header-only answer with ``rcode`` and the query's ID and opcode/RD bits."""
    flags = 0x8000 | ((query[2] & 0x79) << 8 if len(query) > 2 else 0) | rcode
    return query[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)
