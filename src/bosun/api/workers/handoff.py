"""Connections placed by the store owner: it alone accepts, and hands each new connection to
an API process in turn, by weight (``socket.send_fds``, SCM_RIGHTS).

SO_REUSEPORT lets the kernel hash each connection to a process: evenly on average, but 50
clients were seen to split 32/18 as well as 25/25, and even split the owner gets as many as a
worker while it also commits every process's writes, feeds every worker's store watch and
runs the controllers. Here connections go round the processes by smooth weighted round robin
(nginx's), the owner counting as ``OWNER_WEIGHT`` of a worker: with one worker, 50 clients
split 21/29 whatever their ports, and any run of new connections reaches every process (a
client that wants another process than its last one needs only open another).

Placement does not follow how many connections each process still holds: with least-connections,
one process holding a long watch would receive none of a run of short requests while another
served them all. A handoff that fails (the worker is gone) leaves the connection to the next
process; the owner itself never refuses one. The handoff socket is a SOCK_SEQPACKET pair made
for one worker, which alone inherits its end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# The owner's share of connections relative to a worker's. Profiled at 25/25 with pod creates
# (SQLite), the owner used 0.79 ms of CPU per create and the worker 0.61: the owner's own work
# (SQLite's writer, the store channel, the watch streams) is about a fifth of a request's cost
# more, which 0.7 of a worker's share of connections offsets.
OWNER_WEIGHT = 0.7
BACKLOG = 1024

Serve = Callable[[socket.socket], Coroutine[Any, Any, None]]


def bind_listeners(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for ``host``:``port``, as asyncio's create_server binds them (one per
    address the host resolves to; IPv6 ones IPv6-only), non-blocking, not yet accepted from."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    out: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(out) > 1:  # one port for every address
                addr = (addr[0], out[0].getsockname()[1], *addr[2:])
            sock.bind(addr)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in out:
            sock.close()
        raise
    return out


@dataclass
class _Peer:
    channel: socket.socket | None  # None: this process
    weight: float
    current: float = 0.0  # smooth weighted round robin's running score


class Dispatcher:
    """Accepts on ``listeners`` and serves each connection here (``serve``) or hands it to a
    worker added with :meth:`add`, in turn by weight."""

    def __init__(self, listeners: list[socket.socket], serve: Serve) -> None:
        self.listeners = listeners
        self._serve = serve
        self._peers: dict[int, _Peer] = {0: _Peer(None, OWNER_WEIGHT)}
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        for sock in self.listeners:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def add(self, index: int, channel: socket.socket) -> None:
        """Hand connections to worker ``index`` too, over ``channel`` (it serves already)."""
        self.remove(index)
        channel.setblocking(False)
        self._peers[index] = _Peer(channel, 1.0)

    def remove(self, index: int) -> None:
        if index == 0:
            return
        peer = self._peers.pop(index, None)
        if peer is not None and peer.channel is not None:
            peer.channel.close()

    def order(self) -> list[int]:
        """The processes (0: this one) in the order the next connection tries them: the one the
        round robin picks first, then the others should it fail."""
        total = 0.0
        for peer in self._peers.values():
            peer.current += peer.weight
            total += peer.weight
        ranked = sorted(self._peers, key=lambda i: -self._peers[i].current)
        self._peers[ranked[0]].current -= total
        return ranked

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):  # a burst is taken in one go, but the loop is not held for ever
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: the connection waits in the backlog
                log.warning("accepting a connection failed: %s", exc)
                return
            self._place(conn)

    def _place(self, conn: socket.socket) -> None:
        for index in self.order():
            channel = self._peers[index].channel
            if channel is None:
                break
            try:
                socket.send_fds(channel, [b"c"], [conn.fileno()])
            except OSError as exc:  # gone, or its queue is full: the next one takes it
                log.debug("handing a connection to API worker %d failed: %r", index, exc)
                continue
            conn.close()  # the worker holds its own descriptor now
            return
        conn.setblocking(False)
        task = self._loop.create_task(self._serve(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Stop accepting and close the listeners and handoff channels."""
        for sock in self.listeners:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock.fileno())
            sock.close()
        for index in list(self._peers):
            self.remove(index)


class Receiver:
    """A worker's end: serves each connection its owner hands it."""

    def __init__(self, channel: socket.socket, serve: Serve) -> None:
        self.channel = channel
        self._serve = serve
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.channel.setblocking(False)
        self._loop.add_reader(self.channel.fileno(), self._receive)

    def _receive(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.channel, 1, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:  # the owner is gone (the store channel says so too)
                self._loop.remove_reader(self.channel.fileno())
                return
            for fd in fds:
                conn = socket.socket(fileno=fd)
                conn.setblocking(False)
                task = self._loop.create_task(self._serve(conn))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self.channel.fileno())
        self.channel.close()
