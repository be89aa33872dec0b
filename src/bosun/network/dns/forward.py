"""Names outside the cluster, sent on to the node's own resolvers, with a short cache.

A query is relayed as it came (a fresh socket per query, so its ID cannot collide with
another's), over UDP or TCP as the pod asked, to each upstream in turn until one answers.
Answers are kept for at most :data:`MAX_CACHE_TTL` seconds (less if their records say so):
enough to spare the upstreams the bursts a pod's search path makes, short enough that a
name changed outside is seen soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
import time
from collections.abc import Iterable
from pathlib import Path

from dnslib import DNSError, DNSRecord

log = logging.getLogger(__name__)

MAX_CACHE_TTL = 30.0
CACHE_ENTRIES = 10_000
UPSTREAM_TIMEOUT = 2.0
RCODE_NOERROR, RCODE_NXDOMAIN = 0, 3


def resolv_conf_nameservers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The ``nameserver`` lines of the node's resolv.conf (none if it cannot be read)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    return [parts[1] for line in text.splitlines() if len(parts := line.split()) >= 2 and parts[0] == "nameserver"]


def upstream_address(text: str) -> tuple[str, int]:
    """``ADDR`` or ``ADDR:PORT`` (``[v6]:PORT``) -> (host, port); ValueError names what is wrong."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        number = int(port)
    except ValueError:
        number = 0
    if not 0 < number < 65536:
        raise ValueError(f"upstream DNS server {text!r}: expected an IP address, optionally :PORT")
    return host, number


class _OneAnswer(asyncio.DatagramProtocol):
    def __init__(self, qid: bytes) -> None:
        self.qid = qid
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if data[:2] == self.qid and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class Forwarder:
    def __init__(self, upstreams: Iterable[tuple[str, int]], *, timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self._cache: dict[bytes, tuple[float, bytes]] = {}

    async def resolve(self, query: bytes, *, tcp: bool = False) -> bytes | None:
        """The upstream's answer to ``query`` (raw DNS message, ID included), or None when no
        upstream answered in time."""
        key = (b"T" if tcp else b"U") + query[2:]
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return query[:2] + hit[1][2:]
        for host, port in self.upstreams:
            try:
                answer = await asyncio.wait_for(self._tcp(host, port, query) if tcp else self._udp(host, port, query),
                                                self.timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                log.debug("upstream %s:%s: %s", host, port, e or type(e).__name__)
                continue
            self._remember(key, answer, now)
            return answer
        return None

    async def _udp(self, host: str, port: int, query: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(lambda: _OneAnswer(query[:2]), remote_addr=(host, port))
        try:
            transport.sendto(query)
            return await proto.answer
        finally:
            transport.close()

    @staticmethod
    async def _tcp(host: str, port: int, query: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(size)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _remember(self, key: bytes, answer: bytes, now: float) -> None:
        try:
            msg = DNSRecord.parse(answer)
        except (DNSError, IndexError, struct.error):
            return
        if msg.header.tc or msg.header.rcode not in (RCODE_NOERROR, RCODE_NXDOMAIN):
            return  # a truncated answer is retried over TCP; a failure is not worth keeping
        ttls = [rr.ttl for rr in (*msg.rr, *msg.auth)]
        ttl = min([MAX_CACHE_TTL, *ttls]) if ttls else 5.0
        if ttl <= 0:
            return
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[key] = (now + ttl, answer)
