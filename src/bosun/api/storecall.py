"""One store call with a deadline: an unreachable store answers 503, a slow one 504.

Every read and write of the API server's storage and of its admission plugins goes through
:func:`call_store`, so a client never hangs on a store that stopped answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from bosun.api import errors
from bosun.store.base import UnavailableError

T = TypeVar("T")

# A store call that takes longer than this answers 504 rather than hanging the client.
STORE_TIMEOUT = 10.0


class _Watchdog:
    """Deadlines of the store calls in flight on one event loop, checked by one timer a second.

    ``asyncio.timeout`` arms and cancels a loop timer per call (several µs, paid by every
    API write, several times): here a call costs two dict operations, and the deadline is
    exact to within the tick, which is plenty for a 10 s limit."""

    TICK = 1.0
    _by_loop: dict[asyncio.AbstractEventLoop, _Watchdog] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Watchdog:
        wd = cls._by_loop.get(loop)
        if wd is None:
            # Registered only while calls are pending: a finished loop leaves nothing behind.
            wd = cls._by_loop[loop] = cls(loop)
            loop.call_later(cls.TICK, wd._tick)
        return wd

    def _tick(self) -> None:
        now = self.loop.time()
        for task, deadline in list(self.calls.items()):
            if deadline <= now:
                del self.calls[task]
                self.expired.add(task)
                task.cancel()
        if self.calls or self.expired:
            self.loop.call_later(self.TICK, self._tick)
        else:
            self._by_loop.pop(self.loop, None)


_TIMED_OUT = "the storage backend did not answer in time; nothing was written"


async def call_store(aw: Awaitable[T]) -> T:
    """Run one store call, mapping an unreachable or slow store to 503/504."""
    task = asyncio.current_task()
    if task is None:  # not in a task (never the case for a request): the plain way
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                return await aw
        except TimeoutError as exc:
            raise errors.timeout(_TIMED_OUT) from exc
        except (UnavailableError, ConnectionError, OSError) as exc:
            raise errors.unavailable(f"the storage backend is unavailable: {exc}") from exc
    loop = task.get_loop()
    wd = _Watchdog.of(loop)
    wd.calls[task] = loop.time() + STORE_TIMEOUT
    try:
        return await aw
    except asyncio.CancelledError as exc:
        if task in wd.expired:
            wd.expired.discard(task)
            task.uncancel()
            raise errors.timeout(_TIMED_OUT) from exc
        raise
    except (UnavailableError, ConnectionError, OSError) as exc:
        raise errors.unavailable(f"the storage backend is unavailable: {exc}") from exc
    finally:
        wd.calls.pop(task, None)
        if wd.expired and task in wd.expired:  # defensive: the deadline passed as it finished
            wd.expired.discard(task)
            task.uncancel()
