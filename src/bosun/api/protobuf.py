"""Decode Kubernetes protobuf request bodies into the dict the same request in JSON would give.

kubectl's typed clients (``create namespace``, ``run``, ``expose``, ...) send
``application/vnd.kubernetes.protobuf`` and never retry in JSON, so the API server has to
read them. The rest of Bosun only knows JSON-shaped objects; this module is the one place that
knows the wire format. It reads the ``k8s\\x00`` + ``runtime.Unknown`` envelope, finds the
message for (apiVersion, kind) in the schema generated from Kubernetes' own ``.proto`` files
and Go structs (``tools/gen_proto_schema.py`` -> ``schemas/proto.json``), and writes each field
the way Go's ``encoding/json`` would: JSON names, ``omitempty`` zero values left out, nil
slices as ``null``, ``,inline`` structs flattened, and the special types (Time, Quantity,
IntOrString, Duration, RawExtension, ...) in their JSON spelling.
"""

from __future__ import annotations

import base64
import datetime
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

__all__ = ["MAGIC", "ProtobufError", "decode", "is_protobuf"]

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_SCHEMA_PATH = Path(__file__).parent / "schemas" / "proto.json"

# Field flags, as written by tools/gen_proto_schema.py.
_REPEATED, _OMIT_ZERO, _NULL_ABSENT, _INLINE = 1, 2, 4, 8

# Kinds registered in every group version, defined once in meta/v1.
_META_PACKAGE = "k8s.io.apimachinery.pkg.apis.meta.v1"
_META_KINDS = frozenset({
    "DeleteOptions", "CreateOptions", "UpdateOptions", "PatchOptions", "GetOptions", "ListOptions", "Status",
})

# Value kinds (small ints: compared on every field).
(K_STRING, K_BOOL, K_INT32, K_INT64, K_UINT32, K_UINT64, K_SINT32, K_SINT64, K_DOUBLE, K_FLOAT, K_FIXED32,
 K_FIXED64, K_SFIXED32, K_SFIXED64, K_BYTES, K_MESSAGE, K_MAP, K_TIME, K_MICROTIME, K_DURATION, K_RAWJSON,
 K_QUANTITY, K_INTORSTRING) = range(23)
_KIND_CODES = {
    "string": K_STRING, "bool": K_BOOL, "int32": K_INT32, "int64": K_INT64, "uint32": K_UINT32,
    "uint64": K_UINT64, "sint32": K_SINT32, "sint64": K_SINT64, "double": K_DOUBLE, "float": K_FLOAT,
    "fixed32": K_FIXED32, "fixed64": K_FIXED64, "sfixed32": K_SFIXED32, "sfixed64": K_SFIXED64,
    "bytes": K_BYTES, "message": K_MESSAGE, "map": K_MAP, "time": K_TIME, "microtime": K_MICROTIME,
    "duration": K_DURATION, "rawjson": K_RAWJSON, "quantity": K_QUANTITY, "intorstring": K_INTORSTRING,
}
# The wire type each value kind is written with (packed repeated numbers excepted).
_WIRE = {K_DOUBLE: 1, K_FIXED64: 1, K_SFIXED64: 1, K_FLOAT: 5, K_FIXED32: 5, K_SFIXED32: 5}
for _k in (K_BOOL, K_INT32, K_INT64, K_UINT32, K_UINT64, K_SINT32, K_SINT64):
    _WIRE[_k] = 0
for _k in (K_STRING, K_BYTES, K_MESSAGE, K_MAP, K_TIME, K_MICROTIME, K_DURATION, K_RAWJSON, K_QUANTITY,
           K_INTORSTRING):
    _WIRE[_k] = 2
_FIXED = {K_DOUBLE: struct.Struct("<d"), K_FIXED64: struct.Struct("<Q"), K_SFIXED64: struct.Struct("<q"),
          K_FLOAT: struct.Struct("<f"), K_FIXED32: struct.Struct("<I"), K_SFIXED32: struct.Struct("<i")}


class ProtobufError(ValueError):
    """A body that is not a well-formed Kubernetes protobuf object; the message is one line."""


class _Message:
    """One message type, compiled from the schema for fast field lookups."""

    __slots__ = ("fields", "name", "null_absent", "wrapper")

    def __init__(self, name: str, wrapper: bool) -> None:
        self.name = name
        self.wrapper = wrapper
        # number -> (json name, kind, flags, message or None, map key kind, map value kind)
        self.fields: dict[int, tuple[str, int, int, _Message | None, int, int]] = {}
        self.null_absent: tuple[str, ...] = ()


class _Schema:
    __slots__ = ("messages", "source", "versions")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.source: str = raw.get("source", "")
        self.versions: dict[str, str] = raw["versions"]
        self.messages: dict[str, _Message] = {
            name: _Message(name, bool(spec.get("wrapper"))) for name, spec in raw["messages"].items()
        }
        for name, spec in raw["messages"].items():
            msg = self.messages[name]
            nulls = []
            for num, entry in spec["fields"].items():
                jname, kind, flags, ref = entry[0], _KIND_CODES[entry[1]], entry[2], entry[3]
                sub = self.messages[ref] if ref else None
                kkind = _KIND_CODES[entry[4]] if kind == K_MAP else 0
                vkind = _KIND_CODES[entry[5]] if kind == K_MAP else 0
                msg.fields[int(num)] = (jname, kind, flags, sub, kkind, vkind)
                if flags & _NULL_ABSENT:
                    nulls.append(jname)
            msg.null_absent = tuple(nulls)

    def kind(self, api_version: str, kind: str) -> _Message:
        package = self.versions.get(api_version)
        if package is None:
            raise ProtobufError(f"protobuf: no kind {kind!r} is registered for version {api_version!r}")
        msg = self.messages.get(f"{package}.{kind}")
        if msg is not None:
            first = msg.fields.get(1)
            if first is not None and first[0] == "metadata":
                return msg
        if kind in _META_KINDS:
            return self.messages[f"{_META_PACKAGE}.{kind}"]
        raise ProtobufError(f"protobuf: no kind {kind!r} is registered for version {api_version!r}")


@lru_cache(maxsize=1)
def _schema() -> _Schema:
    return _Schema(orjson.loads(_SCHEMA_PATH.read_bytes()))


def is_protobuf(content_type: str) -> bool:
    """Whether a Content-Type names the Kubernetes protobuf encoding (parameters ignored)."""
    return content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object a ``k8s\\x00``-framed protobuf body carries, with apiVersion and kind set."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ProtobufError("protobuf: body must be bytes")
    body = bytes(body)
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf: body does not start with the Kubernetes magic prefix 'k8s\\x00'")
    try:
        api_version, kind, raw, encoding = _envelope(body, len(MAGIC), len(body))
        if encoding:
            raise ProtobufError(f"protobuf: unsupported contentEncoding {encoding!r}")
        if not kind:
            raise ProtobufError("protobuf: the envelope has no kind")
        msg = _schema().kind(api_version, kind)
        obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
        obj.update(_message(raw, 0, len(raw), msg))
        return obj
    except IndexError:
        raise ProtobufError("protobuf: truncated message") from None
    except RecursionError:
        raise ProtobufError("protobuf: message nested too deeply") from None


def _envelope(buf: bytes, pos: int, end: int) -> tuple[str, str, bytes, str]:
    """runtime.Unknown: typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3, contentType=4."""
    api_version = kind = encoding = ""
    raw = b""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        num, wt = key >> 3, key & 7
        if wt != 2:
            pos = _skip(buf, pos, end, wt, num)
            continue
        n, pos = _varint(buf, pos, end)
        stop = pos + n
        if stop > end:
            raise ProtobufError(f"protobuf: field {num} overruns the message")
        if num == 1:
            p = pos
            while p < stop:
                k2, p = _varint(buf, p, stop)
                if k2 & 7 != 2:
                    p = _skip(buf, p, stop, k2 & 7, k2 >> 3)
                    continue
                m, p = _varint(buf, p, stop)
                if p + m > stop:
                    raise ProtobufError("protobuf: typeMeta field overruns the message")
                if k2 >> 3 == 1:
                    api_version = _text(buf, p, p + m)
                elif k2 >> 3 == 2:
                    kind = _text(buf, p, p + m)
                p += m
        elif num == 2:
            raw = buf[pos:stop]
        elif num == 3:
            encoding = _text(buf, pos, stop)
        pos = stop
    return api_version, kind, raw, encoding


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise ProtobufError(f"protobuf: truncated varint at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError(f"protobuf: varint too long at byte {pos}")


def _skip(buf: bytes, pos: int, end: int, wt: int, num: int) -> int:
    """Step over a field this schema does not know (newer clients may send more fields)."""
    if wt == 0:
        return _varint(buf, pos, end)[1]
    if wt == 1:
        pos += 8
    elif wt == 5:
        pos += 4
    elif wt == 2:
        n, pos = _varint(buf, pos, end)
        pos += n
    else:
        raise ProtobufError(f"protobuf: unsupported wire type {wt} for field {num}")
    if pos > end:
        raise ProtobufError(f"protobuf: field {num} overruns the message")
    return pos


def _text(buf: bytes, start: int, stop: int) -> str:
    # Go does not validate UTF-8 in proto strings; its JSON encoder writes U+FFFD for bad bytes.
    return buf[start:stop].decode("utf-8", "replace")


def _int(v: int, kind: int) -> int:
    if kind == K_INT32:
        v &= 0xFFFFFFFF
        return v - (1 << 32) if v & 0x80000000 else v
    if kind == K_INT64:
        v &= 0xFFFFFFFFFFFFFFFF
        return v - (1 << 64) if v & (1 << 63) else v
    if kind == K_UINT32:
        return v & 0xFFFFFFFF
    if kind == K_UINT64:
        return v & 0xFFFFFFFFFFFFFFFF
    if kind == K_SINT32 or kind == K_SINT64:
        return (v >> 1) ^ -(v & 1)
    return v  # bool is handled by the caller


def _message(buf: bytes, pos: int, end: int, msg: _Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = msg.fields
    while pos < end:
        b = buf[pos]
        if b < 0x80:
            key = b
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        num = key >> 3
        wt = key & 7
        spec = fields.get(num)
        if spec is None:
            pos = _skip(buf, pos, end, wt, num)
            continue
        name, kind, flags, sub, kkind, vkind = spec
        if wt == 2:
            b = buf[pos] if pos < end else 0x80
            if b < 0x80:
                n = b
                pos += 1
            else:
                n, pos = _varint(buf, pos, end)
            stop = pos + n
            if stop > end:
                raise ProtobufError(f"protobuf: field {name!r} of {msg.name} overruns the message")
            if kind == K_STRING:
                value: Any = _text(buf, pos, stop)
            elif kind == K_MESSAGE:
                value = _message(buf, pos, stop, sub)  # type: ignore[arg-type]
                if sub.wrapper:  # type: ignore[union-attr]
                    value = value.get("items") or []
                elif flags & _INLINE:
                    out.update(value)
                    pos = stop
                    continue
            elif kind == K_MAP:
                k, v = _map_entry(buf, pos, stop, kkind, vkind, sub, name)
                mapping = out.get(name)
                if mapping is None:
                    mapping = out[name] = {}
                mapping[k] = v
                pos = stop
                continue
            elif _WIRE[kind] != 2:  # packed repeated numbers
                if not flags & _REPEATED:
                    raise ProtobufError(f"protobuf: field {name!r} of {msg.name} has the wrong wire type 2")
                items = out.setdefault(name, [])
                items.extend(_packed(buf, pos, stop, kind, name))
                pos = stop
                continue
            else:
                value = _special(buf, pos, stop, kind, name)
            pos = stop
        elif wt == 0:
            if _WIRE[kind] != 0:
                raise ProtobufError(f"protobuf: field {name!r} of {msg.name} has the wrong wire type 0")
            v, pos = _varint(buf, pos, end)
            value = v != 0 if kind == K_BOOL else _int(v, kind)
        elif wt == 1 or wt == 5:
            if _WIRE[kind] != wt:
                raise ProtobufError(f"protobuf: field {name!r} of {msg.name} has the wrong wire type {wt}")
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise ProtobufError(f"protobuf: field {name!r} of {msg.name} overruns the message")
            value = _FIXED[kind].unpack_from(buf, pos)[0]
            pos += size
        else:
            raise ProtobufError(f"protobuf: unsupported wire type {wt} for field {name!r} of {msg.name}")
        if flags & _REPEATED:
            items = out.get(name)
            if items is None:
                out[name] = [value]
            else:
                items.append(value)
        elif flags & _OMIT_ZERO and not value:
            out.pop(name, None)
        else:
            out[name] = value
    for name in msg.null_absent:
        if name not in out:
            out[name] = None
    return out


def _packed(buf: bytes, pos: int, end: int, kind: int, name: str) -> list[Any]:
    items: list[Any] = []
    wt = _WIRE[kind]
    while pos < end:
        if wt == 0:
            v, pos = _varint(buf, pos, end)
            items.append(v != 0 if kind == K_BOOL else _int(v, kind))
        else:
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise ProtobufError(f"protobuf: packed field {name!r} overruns the message")
            items.append(_FIXED[kind].unpack_from(buf, pos)[0])
            pos += size
    return items


def _map_entry(
    buf: bytes, pos: int, end: int, kkind: int, vkind: int, sub: _Message | None, name: str
) -> tuple[str, Any]:
    """One ``map<k, v>`` entry (a message with key=1, value=2); missing parts take zero values."""
    key: Any = None
    value: Any = None
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        num, wt = tag >> 3, tag & 7
        if num not in (1, 2):
            pos = _skip(buf, pos, end, wt, num)
            continue
        kind = kkind if num == 1 else vkind
        if wt != _WIRE[kind]:
            raise ProtobufError(f"protobuf: map {name!r} entry has the wrong wire type {wt}")
        if wt == 0:
            v, pos = _varint(buf, pos, end)
            got: Any = v != 0 if kind == K_BOOL else _int(v, kind)
        elif wt == 2:
            n, pos = _varint(buf, pos, end)
            stop = pos + n
            if stop > end:
                raise ProtobufError(f"protobuf: map {name!r} entry overruns the message")
            if kind == K_STRING:
                got = _text(buf, pos, stop)
            elif kind == K_MESSAGE:
                got = _message(buf, pos, stop, sub)  # type: ignore[arg-type]
                if sub.wrapper:  # type: ignore[union-attr]
                    got = got.get("items") or []
            else:
                got = _special(buf, pos, stop, kind, name)
            pos = stop
        else:
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise ProtobufError(f"protobuf: map {name!r} entry overruns the message")
            got = _FIXED[kind].unpack_from(buf, pos)[0]
            pos += size
        if num == 1:
            key = got
        else:
            value = got
    if key is None:
        key = "" if kkind == K_STRING else 0
    if value is None:
        value = _zero(vkind, sub)
    return (key if isinstance(key, str) else str(key).lower() if isinstance(key, bool) else str(key)), value


def _zero(kind: int, sub: _Message | None) -> Any:
    if kind == K_STRING or kind == K_BYTES:
        return ""
    if kind == K_BOOL:
        return False
    if kind == K_MESSAGE:
        return [] if sub is not None and sub.wrapper else _message(b"", 0, 0, sub)  # type: ignore[arg-type]
    if kind == K_QUANTITY:
        return "0"
    if kind in (K_TIME, K_MICROTIME, K_RAWJSON):
        return None
    if kind == K_DURATION:
        return "0s"
    return 0


def _special(buf: bytes, pos: int, end: int, kind: int, name: str) -> Any:
    """Length-delimited values whose JSON is not an object: bytes and apimachinery's own types."""
    if kind == K_BYTES:
        return base64.b64encode(buf[pos:end]).decode("ascii")
    if kind == K_QUANTITY:
        s = _fields(buf, pos, end, name).get(1)
        return _text(buf, s[0], s[1]) if isinstance(s, tuple) and s[1] > s[0] else "0"
    f = _fields(buf, pos, end, name)
    if kind == K_TIME or kind == K_MICROTIME:
        if pos == end:
            return None  # Go's zero Time, which JSON writes as null
        seconds = _int(_num(f.get(1), name), K_INT64)
        nanos = _int(_num(f.get(2), name), K_INT32)
        return _format_time(seconds, nanos if kind == K_MICROTIME else -1, name)
    if kind == K_INTORSTRING:
        if _num(f.get(1), name) == 1:
            s = f.get(3)
            return _text(buf, s[0], s[1]) if isinstance(s, tuple) else ""
        return _int(_num(f.get(2), name), K_INT32)
    if kind == K_DURATION:
        return _format_duration(_int(_num(f.get(1), name), K_INT64))
    if kind == K_RAWJSON:
        s = f.get(1)
        if not isinstance(s, tuple):
            return None
        raw = buf[s[0]:s[1]]
        if raw.startswith(MAGIC):
            return decode(raw)
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProtobufError(f"protobuf: field {name!r} does not hold JSON: {exc}") from None
    raise ProtobufError(f"protobuf: field {name!r} has an unsupported type")  # pragma: no cover


def _fields(buf: bytes, pos: int, end: int, name: str) -> dict[int, int | tuple[int, int]]:
    """A small message's fields: varints as ints, length-delimited ones as (start, stop)."""
    out: dict[int, int | tuple[int, int]] = {}
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            out[num], pos = _varint(buf, pos, end)
        elif wt == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise ProtobufError(f"protobuf: field {name!r} overruns the message")
            out[num] = (pos, pos + n)
            pos += n
        else:
            pos = _skip(buf, pos, end, wt, num)
    return out


def _num(v: int | tuple[int, int] | None, name: str) -> int:
    if v is None:
        return 0
    if isinstance(v, tuple):
        raise ProtobufError(f"protobuf: field {name!r} has the wrong wire type")
    return v


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _format_time(seconds: int, nanos: int, name: str) -> str:
    """RFC 3339 in UTC as metav1.Time (seconds) or metav1.MicroTime (microseconds) writes it."""
    try:
        t = _EPOCH + datetime.timedelta(seconds=seconds)
    except OverflowError:
        raise ProtobufError(f"protobuf: field {name!r} holds a time out of range") from None
    base = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if nanos < 0:
        return base + "Z"
    return f"{base}.{(nanos % 1_000_000_000) // 1000:06d}Z"


def _format_duration(d: int) -> str:
    """Go's time.Duration.String(): 1h2m3.5s, 1.5ms, 0s, -2m0s."""
    if d == 0:
        return "0s"
    sign = "-" if d < 0 else ""
    u = abs(d)
    if u < 1_000_000_000:
        for scale, unit in ((1_000_000, "ms"), (1_000, "µs"), (1, "ns")):
            if u >= scale:
                return sign + _frac(u, scale) + unit
    out = ""
    hours, rest = divmod(u, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return sign + out + _frac(rest, 1_000_000_000) + "s"


def _frac(v: int, scale: int) -> str:
    whole, part = divmod(v, scale)
    if not part:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{part:0{digits}d}".rstrip("0")
