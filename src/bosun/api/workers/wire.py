"""The framing of the store channel between a worker and the store owner.

Both ends are processes of one server started from one executable, and the channel is a
socketpair that only the worker it was made for inherits (no path another user could open),
so frames are pickles: the fastest encoding in the standard library for tuples of str, bytes
and int. Store errors travel as (name, arguments) so that each side builds its own exception
with the fields callers read (``ConflictError.actual``, ``CompactedError.compacted``)."""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import Callable
from typing import Any

from bosun.store.base import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyValue,
    NotFoundError,
    StoreError,
    UnavailableError,
)

_HEADER = struct.Struct("!I")

# Reply kinds: (request id, kind, payload).
OK = 0
ERROR = 1
EVENT = 2
END = 3

KVTuple = tuple[str, bytes, int, int]


def frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class Outbox:
    """Frames put within one turn of the event loop leave in one write: one system call for
    the many requests (or replies, or watch events) that a busy loop produces at once."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._frames: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def put(self, message: Any) -> None:
        if not self._frames:
            self._loop.call_soon(self._flush)
        self._frames.append(frame(message))

    def _flush(self) -> None:
        frames, self._frames = self._frames, []
        if frames and not self.writer.is_closing():
            self.writer.write(b"".join(frames))


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message; IncompleteReadError when the other end is gone."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def kv_tuple(kv: KeyValue) -> KVTuple:
    return (kv.key, kv.value, kv.mod_revision, kv.create_revision)


_ENCODERS: dict[type[StoreError], tuple[str, Callable[[Any], tuple[Any, ...]]]] = {
    KeyExistsError: ("exists", lambda e: (e.key,)),
    NotFoundError: ("notfound", lambda e: (e.key,)),
    ConflictError: ("conflict", lambda e: (e.key, e.expected, e.actual)),
    CompactedError: ("compacted", lambda e: (e.requested, e.compacted)),
}
_DECODERS: dict[str, Callable[..., StoreError]] = {
    "exists": KeyExistsError,
    "notfound": NotFoundError,
    "conflict": ConflictError,
    "compacted": CompactedError,
    "unavailable": UnavailableError,
}


def encode_error(exc: BaseException) -> tuple[str, tuple[Any, ...]]:
    """A store error as (name, arguments); anything else becomes 'unavailable' with its text."""
    found = _ENCODERS.get(type(exc))
    if found is not None:
        name, args = found
        return name, args(exc)
    return "unavailable", (str(exc) if isinstance(exc, StoreError) else f"store owner failed: {exc!r}",)


def decode_error(payload: tuple[str, tuple[Any, ...]]) -> StoreError:
    name, args = payload
    return _DECODERS.get(name, UnavailableError)(*args)
