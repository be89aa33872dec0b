"""The SPDY/3.1 codec that port-forward speaks: the dictionary both ends prime zlib with, header
blocks as a client compresses them, frames split across transport messages, and bad input."""

from __future__ import annotations

import struct
import zlib

import pytest

from bosun import spdy


def _client_syn_stream(deflate: zlib._Compress, stream_id: int, headers: dict[str, str]) -> bytes:
    """A SYN_STREAM as spdystream (kubectl) writes it."""
    block = struct.pack(">I", len(headers)) + b"".join(
        struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode() for k, v in headers.items())
    packed = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIH", stream_id, 0, 0) + packed
    return struct.pack(">IB", 0x80030001, 0) + len(payload).to_bytes(3, "big") + payload


def test_the_dictionary_is_the_protocols() -> None:
    # The checksum every SPDY/3 peer announces in its first header block.
    assert (len(spdy.DICTIONARY), zlib.adler32(spdy.DICTIONARY)) == (1423, 0xE3C6A7C2)


def test_streams_headers_and_data_are_read_across_message_boundaries() -> None:
    deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=spdy.DICTIONARY)
    wire = (_client_syn_stream(deflate, 1, {"streamtype": "error", "port": "80", "requestid": "0"})
            + _client_syn_stream(deflate, 3, {"streamtype": "data", "port": "80", "requestid": "0"})
            + spdy.data(3, b"hello", fin=True) + spdy.ping(1))
    codec = spdy.Codec()
    frames = [f for i in range(0, len(wire), 7) for f in codec.feed(wire[i:i + 7])]
    assert [(f.ftype, f.stream_id) for f in frames] == [(spdy.SYN_STREAM, 1), (spdy.SYN_STREAM, 3), (0, 3),
                                                       (spdy.PING, 0)]
    assert frames[1].headers == {"streamtype": "data", "port": "80", "requestid": "0"}
    assert frames[2].data == b"hello" and frames[2].fin
    assert frames[3].value == 1


def test_replies_carry_a_header_block_the_peer_can_inflate() -> None:
    codec = spdy.Codec()
    reply = codec.syn_reply(5, {"x": "y"})
    assert struct.unpack(">HH", reply[:4]) == (0x8003, spdy.SYN_REPLY)
    assert struct.unpack(">I", reply[8:12])[0] == 5
    raw = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(reply[12:])
    assert raw == struct.pack(">II", 1, 1) + b"x" + struct.pack(">I", 1) + b"y"


def test_another_version_is_refused() -> None:
    with pytest.raises(spdy.ProtocolError, match="SPDY version 2"):
        spdy.Codec().feed(struct.pack(">IB", 0x80020001, 0) + (10).to_bytes(3, "big") + bytes(10))


def test_a_corrupt_header_block_is_a_protocol_error() -> None:
    payload = struct.pack(">IIH", 1, 0, 0) + b"not zlib at all"
    with pytest.raises(spdy.ProtocolError, match="malformed SPDY control frame"):
        spdy.Codec().feed(struct.pack(">IB", 0x80030001, 0) + len(payload).to_bytes(3, "big") + payload)
