"""The DNS messages of the hot path, read and written directly.

Every query a pod's resolver sends is the same shape: a header, one question, perhaps an
EDNS OPT record. Reading that shape and writing the answer (the question copied back, the
records of :class:`~.records.Answer`, names as plain labels or a pointer to the question)
is a few struct calls; going through dnslib's object model for it cost about 450 µs a
query on this project's 2-core machines, the whole budget of a server meant to answer
thousands a second when its answer cache has just been emptied. Anything else (a message
this reader does not take) is read with dnslib and re-asked in this shape by the server.
"""

from __future__ import annotations

import functools
import socket
import struct
from dataclasses import dataclass

from bosun.network.dns.records import SERVFAIL, Answer, Record, Srv

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "AAAA": 28, "SRV": 33, "OPT": 41, "ANY": 255}
NAMES = {v: k for k, v in TYPES.items()}
CLASS_IN = 1
PLAIN_UDP_SIZE = 512
OUR_UDP_SIZE = 1232  # the EDNS payload size of DNS Flag Day 2020: no IP fragments
SOA_TIMES = (1, 7200, 1800, 86400, 5)  # serial, refresh, retry, expire, negative TTL (CoreDNS's)
_QR, _AA, _TC, _RD, _RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
_OPT = b"\x00\x00\x29" + struct.pack("!HIH", OUR_UDP_SIZE, 0, 0)
_HEADER = struct.Struct("!HHHHH")


@dataclass(frozen=True)
class Query:
    qid: bytes  # the two ID bytes, as sent
    flags: int
    name: str  # as asked (its case kept), without the final dot
    qtype: int
    question: bytes  # the question section's bytes, copied into the answer
    edns_size: int  # the client's EDNS UDP payload size; 0 without an OPT record

    @property
    def type_name(self) -> str:
        return NAMES.get(self.qtype, str(self.qtype))

    def udp_limit(self) -> int:
        return min(max(self.edns_size, PLAIN_UDP_SIZE), OUR_UDP_SIZE) if self.edns_size else PLAIN_UDP_SIZE


def read_query(data: bytes) -> Query | None:
    """The query in ``data``, or None unless it is a standard query (opcode 0) of one IN
    question, in plain labels, with at most an OPT record after it."""
    if len(data) < 17:
        return None
    flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data, 2)
    if flags & 0xF800 or qdcount != 1 or ancount or nscount or arcount > 1:
        return None
    pos, labels = 12, []
    while True:
        size = data[pos] if pos < len(data) else -1
        if size == 0:
            break
        if not 0 < size < 64 or pos + 1 + size > len(data):
            return None  # a compression pointer, an extended label type, or cut short
        labels.append(data[pos + 1:pos + 1 + size])
        pos += 1 + size
    end = pos + 5
    if end > len(data):
        return None
    qtype, qclass = struct.unpack_from("!HH", data, pos + 1)
    edns = 0
    if arcount:
        if data[end:end + 3] != b"\x00\x00\x29" or len(data) < end + 11:
            return None
        edns = max(struct.unpack_from("!H", data, end + 3)[0], PLAIN_UDP_SIZE)
        if end + 11 + struct.unpack_from("!H", data, end + 9)[0] != len(data):
            return None
    elif end != len(data):
        return None
    if qclass != CLASS_IN or any(b"." in label for label in labels):
        return None
    try:
        name = b".".join(labels).decode("ascii")
    except UnicodeDecodeError:
        return None
    return Query(data[:2], flags, name, qtype, data[12:end], edns)


def write_answer(q: Query, answer: Answer, *, udp: bool) -> bytes:
    """The response to ``q``: ``answer``'s records, truncated (TC) past the UDP size."""
    flags = _QR | _RA | (q.flags & _RD) | answer.rcode | (_AA if answer.rcode != SERVFAIL else 0)
    asked = q.name.lower() + "."
    sections = [b"".join((b"\xc0\x0c" if r.name == asked else _name(r.name)) + _tail(r) for r in part)
                for part in (answer.answer, answer.authority, answer.additional)]
    opt = 1 if q.edns_size else 0
    head = q.qid + _HEADER.pack(flags, 1, len(answer.answer), len(answer.authority), len(answer.additional) + opt)
    wire = b"".join((head, q.question, *sections, _OPT if opt else b""))
    if udp and len(wire) > q.udp_limit():
        head = q.qid + _HEADER.pack(flags | _TC, 1, 0, 0, opt)
        wire = head + q.question + (_OPT if opt else b"")
    return wire


@functools.lru_cache(maxsize=8192)
def _name(name: str) -> bytes:
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".") if label]
    if any(len(label) > 63 for label in labels):
        raise ValueError(f"DNS label too long in {name!r}")
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


@functools.lru_cache(maxsize=65536)
def _tail(rec: Record) -> bytes:
    """Everything of a record after its owner name: type, class, TTL and the data."""
    data = rec.data
    if isinstance(data, Srv):
        rdata = struct.pack("!HHH", data.priority, data.weight, data.port) + _name(data.target)
    elif rec.type == "A":
        rdata = socket.inet_pton(socket.AF_INET, data)
    elif rec.type == "AAAA":
        rdata = socket.inet_pton(socket.AF_INET6, data)
    elif rec.type == "SOA":
        rdata = _name(data) + _name("hostmaster." + rec.name) + struct.pack("!IIIII", *SOA_TIMES)
    else:  # CNAME, PTR: a name
        rdata = _name(data)
    return struct.pack("!HHIH", TYPES[rec.type], CLASS_IN, rec.ttl, len(rdata)) + rdata
