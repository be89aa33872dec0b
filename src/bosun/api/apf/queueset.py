"""One priority level's seats and queues (upstream's ``queueset``), on the event loop.

A request takes a seat at once while the level has one free and nobody waits. Otherwise a
``Reject`` level refuses it, and a ``Queue`` level puts it in one of its queues: the flow's
hash deals a hand of ``handSize`` queues (shuffle sharding, so two flows rarely share all
their queues) and the shortest of the hand takes it, unless that queue already holds
``queueLengthLimit`` requests. A freed seat goes to the head of the queue with the smallest
virtual start time (start-time fair queuing: each queue's clock advances by one per request
it sends, and a queue that was empty starts at the level's current virtual time), so flows
that keep a queue full get their turn and no more.

A request may cost more than one seat (its width, :mod:`.width`): it starts only when that
many are free, or when nothing else runs if it is wider than the whole limit (upstream's
``canAccommodateSeats``); the head of the chosen queue waits for its seats and nothing
behind it jumps ahead. A queue's clock advances by the seats a request takes. The limit
itself moves as levels lend and borrow seats (:meth:`QueueSet.set_limit`, :mod:`.borrowing`);
the seat demand (seats taken plus seats waited for) is integrated for that.

Simplification: a queue's "length" for the choice is what waits in it (not what it has
executing).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from bosun.api.apf.borrowing import Integrator


class Rejected(Exception):
    """The level refused the request; ``reason`` is upstream's metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Shape:
    """A level's limits: ``queues`` 0 means Reject (no queueing); ``seats`` the limit it
    starts with; ``exempt``: never limited (its seats are only counted)."""

    seats: int
    queues: int = 0
    hand_size: int = 0
    queue_length_limit: int = 0
    exempt: bool = False


class _Waiting:
    __slots__ = ("future", "hashed", "note", "queue", "seats")

    def __init__(self, future: asyncio.Future[None], hashed: int, queue: _Queue, seats: int, note: object) -> None:
        self.future = future
        self.hashed = hashed
        self.queue = queue
        self.seats = seats
        self.note = note  # what the debug dump says of it (the dispatcher's flow)


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
        self.limit = shape.seats  # the current limit (borrowing moves it)
        self.in_use = 0  # seats taken
        self.executing = 0  # requests holding seats
        self.queued = 0  # requests waiting
        self.queued_seats = 0
        self.demand = Integrator()  # in_use + queued_seats over time
        # Upstream's dump_priority_levels counters.
        self.dispatched = self.rejected = self.timed_out = self.cancelled = 0
        self._queues = [_Queue(i) for i in range(shape.queues)]
        self._busy: set[_Queue] = set()  # queues with someone waiting
        self._virtual = 0.0

    def reshape(self, shape: Shape) -> None:
        """New queues from an updated object (who waits is dealt again into them); the limit
        stays until :meth:`set_limit`."""
        if shape == self.shape:
            return
        old = [w for q in self._queues for w in q.waiting]
        self.shape = shape
        self._queues = [_Queue(i) for i in range(shape.queues)]
        self._busy.clear()
        self.queued = self.queued_seats = 0
        for w in old:
            if shape.queues:
                self._enqueue(w.future, w.hashed, w.seats, w.note, w)
            elif not w.future.done():
                self.rejected += 1
                w.future.set_exception(Rejected("concurrency-limit"))
        self.demand.set(self.in_use + self.queued_seats)
        self._dispatch()

    def set_limit(self, limit: int) -> None:
        """The limit borrowing gives the level now; a higher one lets waiting requests in."""
        self.limit = limit
        if self.queued:
            self._dispatch()

    def fits(self, seats: int) -> bool:
        """``seats`` can start now: free, or nothing runs and they are more than the limit."""
        return self.shape.exempt or self.in_use + seats <= self.limit or self.in_use == 0

    def try_take(self, seats: int = 1) -> bool:
        """The seats now if they are free and nobody is waiting for any."""
        if not self.queued and self.fits(seats):
            self.in_use += seats
            self.executing += 1
            self.dispatched += 1
            self.demand.set(self.in_use + self.queued_seats)
            return True
        return False

    async def wait(self, hashed: int, limit: float, seats: int = 1, note: object = None) -> None:
        """Wait in a queue for the seats (at most ``limit`` seconds), or Rejected."""
        if not self.shape.queues:
            self.rejected += 1
            raise Rejected("concurrency-limit")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._enqueue(future, hashed, seats, note, None)
        self.demand.set(self.in_use + self.queued_seats)
        try:
            async with asyncio.timeout(limit):
                await future
        except BaseException as exc:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(seats)  # given the seats as the wait ended: give them back
            else:
                self._drop(waiting)
                self.demand.set(self.in_use + self.queued_seats)
            if isinstance(exc, TimeoutError):
                self.timed_out += 1
                raise Rejected("time-out") from None
            if not isinstance(exc, Rejected):
                self.cancelled += 1
            raise

    def _enqueue(self, future: asyncio.Future[None], hashed: int, seats: int, note: object,
                 moved: _Waiting | None) -> _Waiting:
        shape = self.shape
        hand = deal(hashed, shape.queues, shape.hand_size)
        queue = min((self._queues[i] for i in hand), key=lambda q: len(q.waiting))
        if len(queue.waiting) >= shape.queue_length_limit:
            self.rejected += 1
            exc = Rejected("queue-full")
            if moved is None:
                raise exc
            if not future.done():
                future.set_exception(exc)
            return moved
        waiting = moved or _Waiting(future, hashed, queue, seats, note)
        waiting.queue = queue
        if not queue.waiting:
            queue.virtual = max(queue.virtual, self._virtual)
            self._busy.add(queue)
        queue.waiting.append(waiting)
        self.queued += 1
        self.queued_seats += seats
        return waiting

    def _drop(self, waiting: _Waiting) -> None:
        queue = waiting.queue
        try:
            queue.waiting.remove(waiting)
        except ValueError:
            return  # already dispatched or dealt away
        self.queued -= 1
        self.queued_seats -= waiting.seats
        if not queue.waiting:
            self._busy.discard(queue)

    def release(self, seats: int = 1) -> None:
        self.in_use -= seats
        self.executing -= 1
        self.demand.set(self.in_use + self.queued_seats)
        if self.queued:
            self._dispatch()

    def _dispatch(self) -> None:
        while self.queued:
            queue = min(self._busy, key=lambda q: (q.virtual, q.index))
            waiting = queue.waiting[0]
            if not waiting.future.done() and not self.fits(waiting.seats):
                return  # the head waits for its seats; nobody jumps ahead of it
            queue.waiting.popleft()
            self.queued -= 1
            self.queued_seats -= waiting.seats
            if not queue.waiting:
                self._busy.discard(queue)
            if waiting.future.done():  # cancelled meanwhile: its task drops nothing more
                continue
            self._virtual = queue.virtual
            queue.virtual += waiting.seats
            self.in_use += waiting.seats
            self.executing += 1
            self.dispatched += 1
            waiting.future.set_result(None)

    def queues(self) -> list[tuple[int, list[object], int]]:
        """(index, the notes of who waits, their seats) of every queue, for the debug dump."""
        return [(q.index, [w.note for w in q.waiting], sum(w.seats for w in q.waiting)) for q in self._queues]

    @property
    def virtual(self) -> float:
        return self._virtual
