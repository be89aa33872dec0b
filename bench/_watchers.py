"""The watch phase's W watchers: in the writers' own process, or spread over processes.

100 watchers reading TLS streams in Python cost the load generator more CPU than the server
spends sending to them; in the writers' process they delay the writers' sends and the
stamping of every arrival, and the figure then measures the load generator. Spread over
processes, each has its own event loop, and the writers' loop only writes.

Stamps are ``time.monotonic()`` in every process: on Linux one system-wide clock
(CLOCK_MONOTONIC), so a watcher process's arrival time and the writer's send time of the same
write are comparable.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from _common import PODS, close_clients
from _pods import SEQ_ANNOTATION
from bosun.client.rest import Client, resource_path

_STAMP = f'"{SEQ_ANNOTATION}":"'.encode()
Arrivals = list[list[tuple[int, float]]]  # per watcher: (write's sequence number, arrival time)
_START_S = 30.0  # for every watch to deliver the sentinel / the last write


def _seq_in(line: bytes) -> int:
    at = line.find(_STAMP)
    if at < 0:
        return -1  # a bookmark, or an event without a stamp
    at += len(_STAMP)
    return int(line[at : line.index(b'"', at)])


async def _watcher(client: Client, namespace: str, rv: str, got: list[tuple[int, float]]) -> None:
    """Reads the raw stream and only looks for the sequence stamp instead of decoding each
    event: decoding W copies of every event would measure the load generator."""
    params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
    buf = b""
    async for chunk in client.stream(resource_path(PODS, namespace), params):
        now = time.monotonic()
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            s = _seq_in(line)
            if s >= 0:
                got.append((s, now))


async def _until(done: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(_START_S):
            while not done():  # noqa: ASYNC110 (polled: the delays were stamped on arrival)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise RuntimeError(f"timed out waiting for {what}") from None


class Watchers(Protocol):
    """W watches from ``rv`` on; ``live`` once each has the sentinel write (seq 0)."""

    async def live(self) -> None: ...

    async def clear(self) -> None:
        """Forget what arrived so far (the sentinel): the timed writes come next."""

    async def collect(self, total: int) -> tuple[Arrivals, float]:
        """Each watcher's arrivals once it has ``total`` (or after a bound), and the CPU
        seconds the watcher processes used since ``clear`` (0: they are this process)."""

    async def close(self) -> None: ...


class InProcess:
    """The watchers as tasks of the writers' event loop (``--watch-procs 0``)."""

    def __init__(self, clients: list[Client], namespace: str, rv: str) -> None:
        self.got: Arrivals = [[] for _ in clients]
        self.tasks = [asyncio.ensure_future(_watcher(c, namespace, rv, g))
                      for c, g in zip(clients, self.got, strict=True)]

    async def live(self) -> None:
        await _until(lambda: all(self.got), f"{len(self.got)} watches to start")

    async def clear(self) -> None:
        for g in self.got:
            g.clear()

    async def collect(self, total: int) -> tuple[Arrivals, float]:
        # Polling the tail is fine: the delays were stamped on arrival, not here.
        with contextlib.suppress(RuntimeError):  # what did not come is counted as not delivered
            await _until(lambda: all(len(g) >= total for g in self.got), "the last events")
        return self.got, 0.0

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _child(kubeconfig: str, namespace: str, rv: str, n: int, conn: Connection) -> None:
    try:
        asyncio.run(_child_main(kubeconfig, namespace, rv, n, conn))
    except Exception as exc:  # the parent reports it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _child_main(kubeconfig: str, namespace: str, rv: str, n: int, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    clients = [Client.from_kubeconfig(kubeconfig) for _ in range(n)]
    try:
        w = InProcess(clients, namespace, rv)
        try:
            await w.live()
            conn.send(("live", None))
            await loop.run_in_executor(None, conn.recv)
            await w.clear()
            cpu0 = time.process_time()
            conn.send(("cleared", None))
            total = await loop.run_in_executor(None, conn.recv)
            got, _ = await w.collect(total)
            conn.send(("got", (got, time.process_time() - cpu0)))
        finally:
            await w.close()
    finally:
        await close_clients(clients)


class Processes:
    """The watchers spread over ``procs`` processes, each its own clients and event loop."""

    def __init__(self, kubeconfig: str, namespace: str, rv: str, watchers: int, procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # no copy of this process's loop or sockets
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for i in range(procs):
            n = watchers // procs + (1 if i < watchers % procs else 0)
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_child, args=(kubeconfig, namespace, rv, n, theirs), daemon=True)
            p.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(p)

    async def _each(self, want: str, within: float = _START_S + 30) -> list[Any]:
        loop = asyncio.get_running_loop()
        answers = await asyncio.wait_for(
            asyncio.gather(*(loop.run_in_executor(None, c.recv) for c in self.conns)), within)
        for kind, value in answers:
            if kind != want:
                raise RuntimeError(f"watcher process: {value}" if kind == "error" else f"watcher process said {kind}")
        return [value for _, value in answers]

    async def live(self) -> None:
        await self._each("live", within=120)  # spawning, importing and TLS handshakes first

    async def clear(self) -> None:
        for c in self.conns:
            c.send("clear")
        await self._each("cleared")

    async def collect(self, total: int) -> tuple[Arrivals, float]:
        for c in self.conns:
            c.send(total)
        got: Arrivals = []
        cpu = 0.0
        for arrivals, used in await self._each("got"):
            got += arrivals
            cpu += used
        return got, cpu

    async def close(self) -> None:
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        for c in self.conns:
            c.close()
