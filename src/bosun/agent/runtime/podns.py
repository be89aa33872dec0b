"""A pod's persistent namespaces (network, IPC, UTS) made by the agent itself, in a thread.

Why not ``unshare --net=F ... hostname POD`` (what the driver ran before): that is a fork and
two execs per pod, and the new network namespace then needed the CNI ``loopback`` plugin (one
more Go program) only to bring ``lo`` up. Network, IPC and UTS namespaces belong to a thread,
not to the process, so a short-lived thread can ``unshare`` into new ones, set the hostname,
bring ``lo`` up (the kernel gives it 127.0.0.1 and ::1, as the loopback plugin relies on),
bind-mount its namespaces onto the pod's files and end: the namespaces live on in the mounts,
and no other thread of the agent ever runs inside them (the thread is never reused).
"""

from __future__ import annotations

import _thread
import asyncio
import ctypes
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path

CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x04000000, 0x08000000, 0x40000000
MS_BIND = 0x1000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_FLAGS = {"net": CLONE_NEWNET, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)


def _make(files: dict[str, Path], hostname: str) -> None:
    """In a fresh thread: new namespaces of the kinds in ``files``, mounted on those files."""
    flags = 0
    for kind in files:
        flags |= _FLAGS[kind]
    _check(_libc.unshare(flags), "unshare")
    if "uts" in files and hostname:
        name = hostname[:63].encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    if "net" in files:
        _loopback_up()
    tid = threading.get_native_id()
    for kind, path in files.items():
        path.touch()
        src = f"/proc/self/task/{tid}/ns/{kind}".encode()
        _check(_libc.mount(src, os.fsencode(path), None, MS_BIND, None), f"mount {kind} namespace on {path}")


def make_namespaces(files: dict[str, Path], hostname: str = "") -> None:
    """Make ``{"net"|"ipc"|"uts": file}`` namespaces kept alive by bind mounts on the files
    (the hostname is set in a new UTS namespace, ``lo`` is up in a new network one). Blocks
    for well under a millisecond; raises OSError."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _make(files, hostname)
        except BaseException as e:  # handed to the caller's thread
            errors.append(e)

    t = threading.Thread(target=run, name="bosun-podns", daemon=True)
    t.start()
    t.join()
    if errors:
        raise errors[0]


async def make_namespaces_async(files: dict[str, Path], hostname: str = "") -> None:
    """:func:`make_namespaces` without blocking the event loop while its thread works."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def done(err: BaseException | None) -> None:
        if fut.done():
            return
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(err)

    def run() -> None:
        err: BaseException | None = None
        try:
            _make(files, hostname)
        except BaseException as e:  # handed to the loop
            err = e
        loop.call_soon_threadsafe(done, err)

    # Not threading.Thread: its start() blocks the loop until the new thread has run, which
    # under a busy GIL took longer than the thread's whole work.
    _thread.start_new_thread(run, ())
    await asyncio.shield(fut)  # a cancelled caller never leaves mounts half made unknown


def adopt_namespaces(pid: int, files: dict[str, Path]) -> None:
    """Bind-mount the ``{"net"|"ipc"|"uts": file}`` namespaces of process ``pid`` onto the
    files again (see sandbox_recovery.py); raises OSError."""
    for kind, path in files.items():
        src = f"/proc/{pid}/ns/{kind}".encode()
        _check(_libc.mount(src, os.fsencode(path), None, MS_BIND, None), f"mount {kind} namespace on {path}")
