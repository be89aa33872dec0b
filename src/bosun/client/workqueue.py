"""A rate-limited work queue with client-go's semantics, the heart of every controller loop.

Controllers reconcile *keys*, not events: many events for one object collapse into one
queued key, a key is never processed by two workers at once, and a failing key backs off
exponentially so one broken object cannot starve the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class QueueShutdown(Exception):
    """The queue was shut down; workers should exit."""


class WorkQueue:
    """Deduplicating FIFO of keys with delayed adds and per-key exponential back-off.

    * A key added several times before a worker takes it is processed once.
    * A key added while a worker holds it is queued again only after ``done(key)``, so the
      same key is never processed concurrently yet no change is missed.
    * After ``shutdown()``, ``get()`` raises :class:`QueueShutdown` (queued keys are dropped:
      a stopping controller rebuilds its picture from the informers when it starts again).
    """

    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._waiting: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._getters: list[asyncio.Future[None]] = []
        self._shutting_down = False

    # -- adding -----------------------------------------------------------------------------

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._wake()

    def add_after(self, key: str, delay: float) -> None:
        """Add once ``delay`` seconds have passed; an earlier pending add for the key wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        ready = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending[0] <= ready:
                return
            pending[1].cancel()
        handle = loop.call_at(ready, self._fire, key)
        self._waiting[key] = (ready, handle)

    def _fire(self, key: str) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def when(self, key: str) -> float:
        """The back-off the next ``add_rate_limited(key)`` will use, and count it as a failure."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # Cap the exponent so huge failure counts never overflow a float.
        return min(self.base_delay * (2 ** min(failures, 64)), self.max_delay)

    def add_rate_limited(self, key: str) -> None:
        self.add_after(key, self.when(key))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    # -- taking -----------------------------------------------------------------------------

    async def get(self) -> str:
        """Wait for a key and mark it as being processed; call ``done(key)`` afterwards."""
        while not self._queue:
            if self._shutting_down:
                raise QueueShutdown()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            finally:
                if fut in self._getters:
                    self._getters.remove(fut)
        if self._shutting_down:
            raise QueueShutdown()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake()

    def _wake(self) -> None:
        # Wake every waiter: each re-checks the queue, so a waiter cancelled after being
        # woken can never swallow the wake-up another one needed.
        for fut in self._getters:
            if not fut.done():
                fut.set_result(None)
        self._getters.clear()

    # -- lifecycle --------------------------------------------------------------------------

    def shutdown(self) -> None:
        self._shutting_down = True
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._wake()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        return len(self._queue)


async def run_workers(
    queue: WorkQueue, reconcile: Callable[[str], Awaitable[None]], workers: int = 1,
) -> None:
    """Process keys with ``workers`` concurrent loops until the queue shuts down.

    A key whose reconcile raises is retried with back-off; one that succeeds has its
    back-off reset. Cancelling this coroutine cancels the workers.
    """

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except QueueShutdown:
                return
            try:
                await reconcile(key)
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except Exception:
                log.exception("reconcile %s failed (retry %d)", key, queue.num_requeues(key) + 1)
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            queue.done(key)

    tasks = [asyncio.create_task(worker(), name=f"workqueue-worker-{i}") for i in range(max(1, workers))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
