"""The store owner's side: start the API workers, serve each its store, restart one that dies.

A worker is ``python -m bosun.api.workers.worker`` (a fresh interpreter: forking a process
that already runs SQLite's writer thread and an event loop is not safe). It inherits two
socketpairs: one over which it first receives the server's configuration and then reaches the
owner's store (storeserver.py), and one over which the owner hands it client connections
(handoff.py). It prints ``ready`` on its stdout once it serves; nothing else uses that pipe.

Workers do not listen: the owner accepts every connection and places it (handoff.py), in a
worker only once that serves. A worker that dies takes its handoff channel with it, and no
connection is handed to it any more.
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
from bosun.api.workers.handoff import Dispatcher
from bosun.api.workers.storeserver import StoreServer
from bosun.api.workers.wire import frame
from bosun.store.base import Store

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
# A worker that keeps dying is restarted after a pause that doubles up to this.
MAX_RESTART_DELAY = 30.0


class WorkerStartError(RuntimeError):
    """A worker exited or stayed silent before it served (its own log says why)."""


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    serving: asyncio.Task[None]


class WorkerPool:
    """``count`` API worker processes sharing ``store`` with this process, serving the
    connections ``dispatcher`` hands them."""

    def __init__(self, config: ServerConfig, store: Store, dispatcher: Dispatcher, count: int,
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
        self.dispatcher = dispatcher
        # A worker's URL is its owner's (the port chosen when the config says 0).
        port = dispatcher.listeners[0].getsockname()[1]
        self.config = replace(self.config, listen=f"{config.listen.rsplit(':', 1)[0]}:{port}")
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
        mine, theirs = socket.socketpair()
        handoff, their_handoff = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bosun.api.workers.worker", str(theirs.fileno()),
                str(their_handoff.fileno()), self.log_level, str(index),
                pass_fds=(theirs.fileno(), their_handoff.fileno()), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE)
        except BaseException:
            handoff.close()
            raise
        finally:
            theirs.close()
            their_handoff.close()
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
            handoff.close()
            raise WorkerStartError(f"API worker {index} (pid {proc.pid}) did not start: {why}; "
                                   "see its log lines above")
        self.dispatcher.add(index, handoff)

    async def _supervise(self, index: int) -> None:
        delay = 1.0
        while True:
            worker = self.workers[index]
            code = await worker.proc.wait()
            self.dispatcher.remove(index)
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
        for w in workers:  # no more connections for them
            self.dispatcher.remove(w.index)
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
