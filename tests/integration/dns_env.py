"""Network namespaces for the DNS tests: made with ``ip netns``, linked by veth pairs,
entered per thread (a network namespace belongs to a thread: sockets are made in the one
of the thread that makes them), and always removed, with whatever ran in them.

Also a small upstream DNS server (dnslib's threaded one) standing for the node's own
resolvers, run inside a namespace of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(path: str) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Netns:
    """One named namespace with ``lo`` up; :meth:`delete` kills what still runs in it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")

    def run(self, *cmd: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True, **kw)

    def executor(self) -> ThreadPoolExecutor:
        """One thread inside this namespace, for blocking socket work (shut it down after)."""
        return ThreadPoolExecutor(1, initializer=setns, initargs=(self.path,))

    def delete(self) -> None:
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def link(a: Netns, a_addr: str, b: Netns, b_addr: str) -> None:
    """A veth pair between two namespaces, each end with its ``ADDR/LEN`` and up."""
    tag = uuid.uuid4().hex[:8]
    ip("link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")
    for ns, dev, addr in ((a, f"va{tag}", a_addr), (b, f"vb{tag}", b_addr)):
        ip("link", "set", dev, "netns", ns.name)
        ip("-n", ns.name, "addr", "add", addr, "dev", dev)
        ip("-n", ns.name, "link", "set", dev, "up")


@contextlib.contextmanager
def namespaces(*roles: str) -> Iterator[dict[str, Netns]]:
    """``{role: Netns}`` named ``bdns<tag>-<role>``; all deleted at the end, even on failure."""
    tag = uuid.uuid4().hex[:6]
    made: dict[str, Netns] = {}
    try:
        for role in roles:
            made[role] = Netns(f"bdns{tag}-{role}")
        yield made
    finally:
        for ns in made.values():
            ns.delete()


@contextlib.contextmanager
def entered(ns: Netns) -> Iterator[None]:
    """The calling thread inside ``ns`` (and threads it starts meanwhile), then back."""
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        setns(ns.path)
        try:
            yield
        finally:
            if _libc.setns(back, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's own namespace")
    finally:
        os.close(back)


def in_thread(ns: Netns, fn: Callable[[], T]) -> T:
    """``fn()`` on a new thread inside ``ns`` (blocking; for a short client call)."""
    with ns.executor() as pool:
        return pool.submit(fn).result(30)


class _Fixed(BaseResolver):  # type: ignore[misc]
    def __init__(self, names: dict[str, str]) -> None:
        self.names = {k.lower().rstrip("."): v for k, v in names.items()}
        self.asked: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        q = request.q
        name = str(q.qname).lower().rstrip(".")
        self.asked.append((name, QTYPE.get(q.qtype)))
        reply = request.reply()
        if name in self.names and q.qtype == QTYPE.A:
            reply.add_answer(RR(q.qname, QTYPE.A, ttl=60, rdata=A(self.names[name])))
        elif name not in self.names:
            reply.header.rcode = 3
        return reply


class Upstream:
    """An upstream DNS server on ``address``:53 (UDP and TCP) inside ``ns``, answering A for
    ``names`` and NXDOMAIN for the rest; ``asked`` lists what reached it."""

    def __init__(self, ns: Netns, address: str, names: dict[str, str]) -> None:
        self.resolver = _Fixed(names)
        self.servers: list[DNSServer] = []
        started = threading.Event()

        def start() -> None:  # the servers' threads are born in the namespace of this one
            setns(ns.path)
            for tcp in (False, True):
                srv = DNSServer(self.resolver, address=address, port=53, tcp=tcp, logger=_Quiet())
                srv.start_thread()
                self.servers.append(srv)
            started.set()

        threading.Thread(target=start, daemon=True).start()
        if not started.wait(10):
            raise RuntimeError("upstream DNS server did not start")

    @property
    def asked(self) -> list[tuple[str, str]]:
        return self.resolver.asked

    def stop(self) -> None:
        for srv in self.servers:
            srv.stop()
            srv.server.server_close()


class _Quiet:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None
