"""One priority level's seats and queues (upstream's ``queueset``), on the event loop.

A request takes a seat at once while the level has one free and nobody waits. Otherwise a
``Reject`` level refuses it, and a ``Queue`` level puts it in one of its queues: the flow's
hash deals a hand of ``handSize`` queues (shuffle sharding, so two flows rarely share all
their queues) and the shortest of the hand takes it, unless that queue already holds
``queueLengthLimit`` requests. A freed seat goes to the head of the queue with the smallest
virtual start time (start-time fair queuing: each queue's clock advances by one per request
it sends, and a queue that was empty starts at the level's current virtual time), so flows
that keep a queue full get their turn and no more.

Simplifications (said in the package's docstring): every request costs one seat (no width
estimate for lists), a queue's "length" for the choice is what waits in it (not what it
has executing), and nothing is borrowed between levels (``lendablePercent`` and
``borrowingLimitPercent`` are kept on the objects but not used).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


class Rejected(Exception):
    """The level refused the request; ``reason`` is upstream's metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Shape:
    """A level's limits: ``queues`` 0 means Reject (no queueing)."""

    seats: int
    queues: int = 0
    hand_size: int = 0
    queue_length_limit: int = 0


class _Waiting:
    __slots__ = ("future", "hashed", "queue")

    def __init__(self, future: asyncio.Future[None], hashed: int, queue: _Queue) -> None:
        self.future = future
        self.hashed = hashed
        self.queue = queue


class _Queue:
    __slots__ = ("index", "virtual", "waiting")

    def __init__(self, index: int) -> None:
        self.index = index
        self.waiting: deque[_Waiting] = deque()
        self.virtual = 0.0


def deal(hashed: int, deck: int, hand: int) -> list[int]:
    """``hand`` distinct queue indices out of ``deck`` drawn from the bits of ``hashed``: the
    i-th draw picks among the cards not drawn yet, so equal hashes get equal hands."""
    out: list[int] = []
    for i in range(min(hand, deck)):
        n = deck - i
        card = hashed % n
        hashed //= n
        for used in sorted(out):  # the card-th card still in the deck
            if card >= used:
                card += 1
        out.append(card)
    return out


class QueueSet:
    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.in_use = 0  # seats taken
        self.queued = 0
        self._queues = [_Queue(i) for i in range(shape.queues)]
        self._busy: set[_Queue] = set()  # queues with someone waiting
        self._virtual = 0.0

    def reshape(self, shape: Shape) -> None:
        """New limits from an updated object; who waits is dealt again into the new queues."""
        if shape == self.shape:
            return
        old = [w for q in self._queues for w in q.waiting]
        self.shape = shape
        self._queues = [_Queue(i) for i in range(shape.queues)]
        self._busy.clear()
        self.queued = 0
        for w in old:
            if shape.queues:
                self._enqueue(w.future, w.hashed, w)
            elif not w.future.done():
                w.future.set_exception(Rejected("concurrency-limit"))
        self._dispatch()

    def try_take(self) -> bool:
        """A seat now if one is free and nobody is waiting for one."""
        if self.in_use < self.shape.seats and not self.queued:
            self.in_use += 1
            return True
        return False

    async def wait(self, hashed: int, limit: float) -> None:
        """Wait in a queue for a seat (at most ``limit`` seconds), or Rejected."""
        if not self.shape.queues:
            raise Rejected("concurrency-limit")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._enqueue(future, hashed, None)
        try:
            async with asyncio.timeout(limit):
                await future
        except BaseException as exc:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release()  # given a seat as the wait ended: give it back
            else:
                self._drop(waiting)
            if isinstance(exc, TimeoutError):
                raise Rejected("time-out") from None
            raise

    def _enqueue(self, future: asyncio.Future[None], hashed: int, moved: _Waiting | None) -> _Waiting:
        shape = self.shape
        hand = deal(hashed, shape.queues, shape.hand_size)
        queue = min((self._queues[i] for i in hand), key=lambda q: len(q.waiting))
        if len(queue.waiting) >= shape.queue_length_limit:
            exc = Rejected("queue-full")
            if moved is None:
                raise exc
            if not future.done():
                future.set_exception(exc)
            return moved
        waiting = moved or _Waiting(future, hashed, queue)
        waiting.queue = queue
        if not queue.waiting:
            queue.virtual = max(queue.virtual, self._virtual)
            self._busy.add(queue)
        queue.waiting.append(waiting)
        self.queued += 1
        return waiting

    def _drop(self, waiting: _Waiting) -> None:
        queue = waiting.queue
        try:
            queue.waiting.remove(waiting)
        except ValueError:
            return  # already dispatched or dealt away
        self.queued -= 1
        if not queue.waiting:
            self._busy.discard(queue)

    def release(self) -> None:
        self.in_use -= 1
        if self.queued:
            self._dispatch()

    def _dispatch(self) -> None:
        while self.queued and self.in_use < self.shape.seats:
            queue = min(self._busy, key=lambda q: (q.virtual, q.index))
            waiting = queue.waiting.popleft()
            self.queued -= 1
            if not queue.waiting:
                self._busy.discard(queue)
            if waiting.future.done():  # cancelled meanwhile: its task drops nothing more
                continue
            self._virtual = queue.virtual
            queue.virtual += 1.0
            self.in_use += 1
            waiting.future.set_result(None)
