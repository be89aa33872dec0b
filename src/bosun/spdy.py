"""SPDY/3.1 framing, as much as kubectl speaks (moby/spdystream's dialect): for port-forward,
and for exec and attach from clients that do not use WebSockets (kubectl before 1.30).

Why hand-written: Kubernetes multiplexes port-forward connections over SPDY, even when the
transport is a WebSocket (kubectl 1.31+ tunnels the very same SPDY bytes inside binary
messages, subprotocol ``SPDY/3.1+portforward.k8s.io``), and PyPI has no maintained SPDY
library. The server side needs only a small part of the protocol: parse frames, answer
``SYN_STREAM`` with ``SYN_REPLY``, move ``DATA``, echo ``PING``. spdystream does no flow
control, so ``WINDOW_UPDATE`` and ``SETTINGS`` are read and ignored.

Frame layout (all integers big-endian)::

    control: 1|version(15)=3 | type(16) | flags(8) | length(24) | payload
    data:    0|stream-id(31)            | flags(8) | length(24) | payload

Header blocks (in ``SYN_STREAM``, ``SYN_REPLY``, ``HEADERS``) are ``count(32)`` then
``len(32) name len(32) value`` pairs, compressed with one zlib stream per direction that
lives as long as the session, primed with the protocol's fixed dictionary (:data:`DICTIONARY`).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM status codes this side sends.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL = 1, 2, 3, 5
MAX_DATA = (1 << 24) - 1
_HEAD = struct.Struct(">IB3s")

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location",
    "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
    "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
    "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
    "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
    "public", "set-cookie", "keep-alive", "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
"""The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): 1,423 bytes whose
Adler-32 (0xe3c6a7c2) both ends check when the first header block arrives."""


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3: the session cannot go on."""


@dataclass
class Frame:
    """One frame as read: ``ftype`` is the control type, or 0 for data."""

    ftype: int
    flags: int
    stream_id: int = 0
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    value: int = 0  # RST_STREAM status, PING id, GOAWAY status

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class Codec:
    """Frames in and out of one session: a byte buffer for what arrived (frames may span
    transport messages) and the two long-lived header compression streams."""

    def __init__(self) -> None:
        self._buf = b""
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``; raises :class:`ProtocolError`."""
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags, raw_len = _HEAD.unpack_from(self._buf)
            length = int.from_bytes(raw_len, "big")
            if len(self._buf) < 8 + length:
                break
            payload, self._buf = self._buf[8:8 + length], self._buf[8 + length:]
            frames.append(self._control(word, flags, payload) if word & 0x80000000
                          else Frame(0, flags, word & 0x7FFFFFFF, payload))
        return frames

    def _control(self, word: int, flags: int, payload: bytes) -> Frame:
        version, ftype = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported (only {VERSION})")
        try:
            if ftype == SYN_STREAM:
                return Frame(ftype, flags, _id(payload, 0), headers=self._headers(payload[10:]))
            if ftype in (SYN_REPLY, HEADERS):
                return Frame(ftype, flags, _id(payload, 0), headers=self._headers(payload[4:]))
            if ftype == RST_STREAM:
                return Frame(ftype, flags, _id(payload, 0), value=struct.unpack_from(">I", payload, 4)[0])
            if ftype == PING:
                return Frame(ftype, flags, value=struct.unpack_from(">I", payload)[0])
            if ftype == GOAWAY:
                return Frame(ftype, flags, _id(payload, 0), value=struct.unpack_from(">I", payload, 4)[0])
        except (struct.error, zlib.error, UnicodeDecodeError, IndexError) as e:
            raise ProtocolError(f"malformed SPDY control frame of type {ftype}: {e}") from e
        return Frame(ftype, flags, data=payload)  # SETTINGS, WINDOW_UPDATE, CREDENTIAL: unused here

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        (count,), pos, out = struct.unpack_from(">I", raw), 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", raw, pos)
            out[name.lower()] = raw[pos + 4:pos + 4 + n].decode().split("\0")[0]
            pos += 4 + n
        return out

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, fin: bool = False) -> bytes:
        pairs = sorted((headers or {}).items())
        block = struct.pack(">I", len(pairs)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode() for k, v in pairs)
        packed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return _control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + packed)


def _id(payload: bytes, at: int) -> int:
    return int(struct.unpack_from(">I", payload, at)[0]) & 0x7FFFFFFF


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    return _HEAD.pack(0x80000000 | VERSION << 16 | ftype, flags, len(payload).to_bytes(3, "big")) + payload


def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
    """One or more DATA frames carrying ``payload`` (FIN on the last when asked)."""
    chunks = [payload[i:i + MAX_DATA] for i in range(0, len(payload), MAX_DATA)] or [b""]
    return b"".join(_HEAD.pack(stream_id & 0x7FFFFFFF, FLAG_FIN if fin and i == len(chunks) - 1 else 0,
                               len(c).to_bytes(3, "big")) + c for i, c in enumerate(chunks))


def rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def goaway(last_stream_id: int, status: int = 0) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))
