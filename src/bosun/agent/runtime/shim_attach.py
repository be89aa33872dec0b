"""The agent's side of a shim's attach socket (see :mod:`bosun.agent.runtime.shim_stdio` for
the protocol), for the drivers whose containers run under the shim.

Why the socket is reached through ``/proc/self/fd``: a unix socket path is limited to 107
bytes and a state dir under a deep data dir is longer than that; a directory fd makes the
path short whatever the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from bosun.agent.runtime.base import ContainerConfig

ATTACH = "attach.sock"
CONSOLE = "console.sock"
STDIN, RESIZE, CLOSE = 0, 4, 255


def interactive_spec(config: ContainerConfig, console: bool) -> dict[str, bool]:
    """The shim's spec.json keys for an interactive container ({} for a plain one).
    ``console``: the OCI runtime makes the terminal and sends it through :data:`CONSOLE`."""
    if not (config.stdin or config.tty):
        return {}
    return {"stdin": config.stdin, "stdin_once": config.stdin_once, "tty": config.tty,
            "console": console and config.tty}


def _frame(channel: int, data: bytes) -> bytes:
    return bytes([channel]) + len(data).to_bytes(4, "big") + data


class ShimAttachment:
    """:class:`~bosun.agent.runtime.base.Attachment` over one connection to the shim."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> tuple[int, bytes] | None:
        try:
            head = await self._reader.readexactly(5)
            return head[0], await self._reader.readexactly(int.from_bytes(head[1:], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def _send(self, channel: int, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.write(_frame(channel, data))
            await self._writer.drain()

    async def write(self, data: bytes) -> None:
        await self._send(STDIN, data)

    async def close_stdin(self) -> None:
        await self._send(CLOSE, b"")

    async def resize(self, cols: int, rows: int) -> None:
        await self._send(RESIZE, cols.to_bytes(2, "big") + rows.to_bytes(2, "big"))

    def close(self) -> None:
        self._writer.close()


async def attach_shim(state_dir: Path) -> ShimAttachment | None:
    """Connects to the shim of the container whose state dir this is; None when that shim
    serves no attach socket (a plain container, or one that has ended)."""
    if not (state_dir / ATTACH).exists():
        return None
    fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        reader, writer = await asyncio.open_unix_connection(f"/proc/self/fd/{fd}/{ATTACH}")
    except OSError:
        return None
    finally:
        os.close(fd)
    return ShimAttachment(reader, writer)
