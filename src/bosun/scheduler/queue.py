"""The scheduling queue: active (by priority, then arrival), back-off and unschedulable.

A pod that fits nowhere is parked as unschedulable and comes back only when the cluster
changes in a way that might help (a node joins or changes, a pod leaves), after its
back-off (1 s doubling to 10 s, as kube-scheduler), or after a long safety interval —
never in a busy loop. A change that happens while a pod is being scheduled sends it to
back-off rather than to the unschedulable set, so that change is not missed.

A scheduler with nothing else to do takes the pods that a cluster change made worth another
try before their back-off ends, as kube-scheduler does since 1.33 (KEP-5142, "pop from
backoffQ when activeQ is empty"): the back-off orders and paces retries while others wait,
it is no reason to idle. A rolling update's new pods wait so for the places of the old ones
(a node's ``pods`` count includes terminating pods), and each second of back-off was a
second of the update. Pods backing off after an error (a refused binding, an API failure)
still wait it out: there the back-off limits the rate of failing requests.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
UNSCHEDULABLE_FLUSH = 60.0


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = INITIAL_BACKOFF, max_backoff: float = MAX_BACKOFF,
                 flush_after: float = UNSCHEDULABLE_FLUSH) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.flush_after = flush_after
        self._heap: list[tuple[int, int, str]] = []
        self._active: set[str] = set()
        self._priority: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._last_attempt: dict[str, float] = {}
        self._backoff: dict[str, asyncio.TimerHandle] = {}
        self._unschedulable: dict[str, asyncio.TimerHandle] = {}
        self._failed: set[str] = set()  # backing off after an error: not taken early
        self._in_flight: dict[str, int] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self.move_cycle = 0

    # ---- adding -------------------------------------------------------------------------------

    def add(self, key: str, priority: int = 0) -> None:
        """A new or changed pending pod: schedule it now (or after its running back-off)."""
        self._priority[key] = priority
        if key in self._in_flight or key in self._active:
            return
        self._cancel(key)
        if self._backoff_left(key) > 0:
            self._to_backoff(key)
        else:
            self._push(key)

    def _push(self, key: str) -> None:
        if key in self._active or key in self._in_flight:
            return
        self._active.add(key)
        heapq.heappush(self._heap, (-self._priority.get(key, 0), next(self._seq), key))
        self._wake.set()

    def _cancel(self, key: str) -> None:
        for table in (self._backoff, self._unschedulable):
            handle = table.pop(key, None)
            if handle is not None:
                handle.cancel()
        self._failed.discard(key)

    def delete(self, key: str) -> None:
        """The pod is gone or no longer ours to schedule."""
        self._cancel(key)
        self._active.discard(key)  # its heap entry is skipped when popped
        self._priority.pop(key, None)
        self._attempts.pop(key, None)
        self._last_attempt.pop(key, None)

    # ---- taking -------------------------------------------------------------------------------

    async def pop_batch(self, limit: int) -> list[str]:
        """Wait for at least one pod and take up to ``limit``, highest priority first."""
        while not self._active:
            if self._take_backoff():
                break
            self._wake.clear()
            await self._wake.wait()
        out: list[str] = []
        while self._heap and len(out) < limit:
            _, _, key = heapq.heappop(self._heap)
            if key not in self._active:
                continue
            self._active.discard(key)
            self._in_flight[key] = self.move_cycle
            self._attempts[key] = self._attempts.get(key, 0) + 1
            self._last_attempt[key] = time.monotonic()
            out.append(key)
        return out

    def done(self, key: str) -> None:
        """Scheduled and bound (or dropped): forget its history."""
        self._in_flight.pop(key, None)
        self.delete(key)

    def unschedulable(self, key: str) -> None:
        """It fit nowhere: wait for a cluster change (or for back-off, if one already happened)."""
        popped_at = self._in_flight.pop(key, self.move_cycle)
        if key not in self._priority:
            return  # deleted meanwhile
        if self.move_cycle > popped_at:
            self._to_backoff(key)
            return
        self._cancel(key)
        loop = asyncio.get_running_loop()
        self._unschedulable[key] = loop.call_later(self.flush_after, self._flush, key)

    def retry(self, key: str) -> None:
        """A transient failure (binding refused, API error): try again after back-off."""
        self._in_flight.pop(key, None)
        if key in self._priority:
            self._cancel(key)
            self._failed.add(key)
            self._to_backoff(key)

    # ---- cluster changes ----------------------------------------------------------------------

    def move_all(self) -> None:
        """Something changed that may make parked pods fit: give them another chance."""
        self.move_cycle += 1
        if not self._unschedulable:
            return
        parked = list(self._unschedulable)
        for key in parked:
            self._unschedulable.pop(key).cancel()
            if self._backoff_left(key) > 0:
                self._to_backoff(key)
            else:
                self._push(key)

    def _flush(self, key: str) -> None:
        self._unschedulable.pop(key, None)
        self._push(key)

    def _backoff_duration(self, key: str) -> float:
        attempts = self._attempts.get(key, 0)
        if attempts <= 0:
            return 0.0
        return min(self.initial_backoff * (2 ** min(attempts - 1, 30)), self.max_backoff)

    def _backoff_left(self, key: str) -> float:
        last = self._last_attempt.get(key)
        if last is None:
            return 0.0
        return last + self._backoff_duration(key) - time.monotonic()

    def _to_backoff(self, key: str) -> None:
        if key in self._backoff or key in self._active:
            return
        delay = max(0.0, self._backoff_left(key))
        loop = asyncio.get_running_loop()
        self._backoff[key] = loop.call_later(delay, self._backoff_done, key)
        if key not in self._failed:
            self._wake.set()  # an idle scheduler may take it now (see _take_backoff)

    def _backoff_done(self, key: str) -> None:
        self._backoff.pop(key, None)
        self._failed.discard(key)
        self._push(key)

    def _take_backoff(self) -> bool:
        """With no pod active, make active the backing-off pods that did not fail with an
        error (see the module's docstring); whether there were any."""
        ready = [key for key in self._backoff if key not in self._failed]
        for key in ready:
            self._backoff.pop(key).cancel()
            self._push(key)
        return bool(ready)

    # ---- introspection (tests, metrics) -------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return {"active": len(self._active), "backoff": len(self._backoff),
                "unschedulable": len(self._unschedulable), "in_flight": len(self._in_flight)}
