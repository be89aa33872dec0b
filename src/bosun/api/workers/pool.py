"""The store owner's side: start the API workers, serve each its store, restart one that dies.

A worker is ``python -m bosun.api.workers.worker`` (a fresh interpreter: forking a process
that already runs SQLite's writer thread and an event loop is not safe). It inherits two
things: listening sockets of its own, and one end of a socketpair over which it first receives
the server's configuration and then reaches the owner's store (storeserver.py). It prints
``ready`` on its stdout once it serves; nothing else uses that pipe.

Its listening sockets are bound here, to the owner's address and port, with SO_REUSEPORT (the
owner's too): the kernel then hashes each new connection to one of the processes' queues, so
connections spread evenly. One shared socket would let whichever process wakes first take
them: in a benchmark, one process took all 50 clients. A worker that dies takes its socket
with it (the parent keeps no copy), so no connection waits in a queue nobody accepts from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bosun.aio import cancel_and_wait
from bosun.api.apf.dispatcher import process_share
from bosun.api.server import ServerConfig
from bosun.api.workers.storeserver import StoreServer
from bosun.api.workers.wire import frame
from bosun.store.base import Store

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
# A worker that keeps dying is restarted after a pause that doubles up to this.
MAX_RESTART_DELAY = 30.0


def listen_beside(sock: socket.socket) -> socket.socket:
    """A new listening socket on ``sock``'s address and port, in its SO_REUSEPORT group."""
    new = socket.socket(sock.family, socket.SOCK_STREAM)
    try:
        new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.family == socket.AF_INET6:  # as asyncio binds the owner's
            new.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        new.bind(sock.getsockname()[:2])
        new.listen(128)
    except BaseException:
        new.close()
        raise
    return new


class WorkerStartError(RuntimeError):
    """A worker exited or stayed silent before it served (its own log says why)."""


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    serving: asyncio.Task[None]


class WorkerPool:
    """``count`` API worker processes sharing ``sockets`` and ``store`` with this process."""

    def __init__(self, config: ServerConfig, store: Store, sockets: list[socket.socket], count: int,
                 log_level: str = "WARNING", extra: Mapping[str, Callable[..., Awaitable[Any]]] | None = None) -> None:
        """``extra``: operations besides the store's that workers ask this process for
        (storeserver.py)."""
        # Each worker limits its own requests to its part of the server's concurrency limit
        # (bosun.api.apf), as the owner does with the same division (ServerConfig.concurrency_limit).
        processes = count + 1
        self.config = replace(config, api_workers=1,
                              max_requests_inflight=process_share(config.max_requests_inflight, processes),
                              max_mutating_requests_inflight=process_share(
                                  config.max_mutating_requests_inflight, processes))
        self.store = store
        self.extra = dict(extra or {})
        self.sockets = sockets
        self.count = count
        self.log_level = log_level
        self.workers: dict[int, _Worker] = {}
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers.values()]

    async def start(self) -> None:
        """Start every worker and return once all serve (WorkerStartError if one cannot)."""
        try:
            await asyncio.gather(*(self._spawn(i) for i in range(1, self.count + 1)))
        except BaseException:
            await self.stop()
            raise
        for i in self.workers:
            self._watchers[i] = asyncio.create_task(self._supervise(i), name=f"api-worker-{i}")

    async def _spawn(self, index: int) -> None:
        listening = [listen_beside(s) for s in self.sockets]
        mine, theirs = socket.socketpair()
        fds = [s.fileno() for s in listening]
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bosun.api.workers.worker", str(theirs.fileno()),
                ",".join(map(str, fds)), self.log_level, str(index),
                pass_fds=(theirs.fileno(), *fds), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
        finally:
            theirs.close()
            for s in listening:
                s.close()
        reader, writer = await asyncio.open_unix_connection(sock=mine)
        writer.write(frame(self.config))
        serving = asyncio.create_task(StoreServer(self.store, reader, writer, self.extra).serve(),
                                      name=f"api-worker-{index}-store")
        self.workers[index] = _Worker(index, proc, serving)
        assert proc.stdout is not None
        timed_out = False
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line, timed_out = b"", True
        if line.strip() != b"ready":
            exited = not timed_out
            if proc.returncode is None:  # silent for too long, or closed its stdout: not half-started
                proc.kill()
            code = await proc.wait()
            await cancel_and_wait(serving)
            del self.workers[index]  # said here, not again by stop()
            why = f"it exited with code {code}" if exited else f"it did not serve within {START_TIMEOUT:.0f}s"
            raise WorkerStartError(f"API worker {index} (pid {proc.pid}) did not start: {why}; "
                                   "see its log lines above")

    async def _supervise(self, index: int) -> None:
        delay = 1.0
        while True:
            worker = self.workers[index]
            code = await worker.proc.wait()
            await cancel_and_wait(worker.serving)
            if self._stopping:
                return
            log.error("API worker %d (pid %d) exited with code %s; starting another", index, worker.proc.pid, code)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RESTART_DELAY)
                try:
                    await self._spawn(index)
                    break
                except (WorkerStartError, OSError) as exc:
                    log.error("%s; trying again in %.0fs", exc, delay)
            delay = 1.0

    async def stop(self) -> None:
        """SIGTERM every worker, SIGKILL one that has not exited after STOP_TIMEOUT."""
        self._stopping = True
        for task in self._watchers.values():
            await cancel_and_wait(task)
        self._watchers.clear()
        workers, self.workers = list(self.workers.values()), {}
        for w in workers:
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.terminate()
        for w in workers:
            try:
                await asyncio.wait_for(w.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.error("API worker %d (pid %d) did not stop; killing it", w.index, w.proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()
                await w.proc.wait()
            if w.proc.returncode:  # its own log lines above say why (e.g. shared objects modified)
                log.error("API worker %d (pid %d) stopped with code %s", w.index, w.proc.pid, w.proc.returncode)
            await cancel_and_wait(w.serving)
