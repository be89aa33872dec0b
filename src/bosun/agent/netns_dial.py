"""TCP connections to ``localhost:PORT`` as a pod sees it: from inside its network namespace.

Why a thread: ``setns`` moves only the calling thread, and a socket belongs for good to the
namespace it was created in. So a short-lived thread of our own enters the pod's namespace,
creates the socket and ends (taking its namespace with it); the event loop then connects that
socket as any other. No fork (a fork of a threaded process can hang on a lock another thread
held) and no helper binary.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
_LOOPBACKS = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))
T = TypeVar("T")


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """``fn()`` run by a short-lived thread that entered the network namespace at path
    ``netns`` (its exceptions re-raised here)."""
    done: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"cannot enter the network namespace {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            done.append(fn())
        except BaseException as e:  # re-raised in the caller's thread
            failed.append(e)

    thread = threading.Thread(target=run, name="netns")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return done[0]


def socket_in(netns: str, family: int = socket.AF_INET) -> socket.socket:
    """A new (blocking) TCP socket of the network namespace at path ``netns``."""
    return in_netns(netns, lambda: socket.socket(family, socket.SOCK_STREAM))


async def dial_localhost(netns: str | None, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``port`` on the loopback of ``netns`` (None: this process's own),
    IPv4 first and then IPv6, as kubelet does. Raises OSError with both reasons."""
    loop = asyncio.get_running_loop()
    reasons: list[str] = []
    for family, address in _LOOPBACKS:
        sock = socket_in(netns, family) if netns else socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, port))
        except OSError as e:
            sock.close()
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            reasons.append(f"{'IPv4' if family == socket.AF_INET else 'IPv6'}: {reason}")
            continue
        return await asyncio.open_connection(sock=sock)
    raise OSError(f"failed to connect to localhost:{port} inside the pod's network namespace ({'; '.join(reasons)})")
