"""API Priority and Fairness for one API process: classify, then take a seat, wait for one,
or be refused 429; and the ``apiserver_flowcontrol_*`` metrics that say what happened.

Each level's nominal seats are upstream's ``ceil(limit * shares / sum of shares)``, ``limit``
being this process's part of the server's concurrency limit (:func:`process_share`); its
current seats move between what it may lend and what it may borrow, computed again every
:data:`~bosun.api.apf.borrowing.PERIOD` from every level's seat demand (:mod:`.borrowing`).
An Exempt level is never limited (its seats are counted: its demand takes part in borrowing).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

from bosun.api import errors
from bosun.api.apf import borrowing
from bosun.api.apf.borrowing import Bounds, DemandStats, Item
from bosun.api.apf.classify import Classifier, Schema, compile_schema
from bosun.api.apf.queueset import QueueSet, Rejected, Shape
from bosun.api.apf.width import ONE, Work, level_max_seats
from bosun.api.errors import APIError
from bosun.api.metricfamily import Family
from bosun.api.target import Decoded
from bosun.security.identity import User

Obj = dict[str, Any]
# How long a request may wait in a queue (upstream: a quarter of the 60 s request timeout).
QUEUE_WAIT = 15.0
_WAIT_BUCKETS = (0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)
_LABELS = ["flow_schema", "priority_level"]


def process_share(total: int, processes: int) -> int:
    """One API process's part of the server's concurrency limit. Connections are spread over
    the processes (bosun.api.workers.handoff), so each limits its own requests, as each
    kube-apiserver behind a load balancer does: no cross-process round trip per request."""
    return max(1, math.ceil(total / max(1, processes)))


@dataclass(slots=True)
class Level:
    name: str
    uid: str
    exempt: bool
    seats: QueueSet
    bounds: Bounds = field(default_factory=lambda: Bounds(0, 0, 0))
    current: int = 0  # the limit borrowing gave it last
    max_seats: int = 0  # its widest request (0: width.MAX_SEATS)
    stats: DemandStats = field(default_factory=DemandStats)
    target: float = 0.0


def _shape(seats: int, limited: Obj) -> Shape:
    response = limited.get("limitResponse") or {}
    if response.get("type") != "Queue":
        return Shape(seats)
    q = response.get("queuing") or {}
    return Shape(seats, int(q.get("queues", 64)), int(q.get("handSize", 8)), int(q.get("queueLengthLimit", 50)))


def _percent(part: Obj, name: str) -> int | None:
    value = part.get(name)
    return None if value is None else int(value)


class Flow:
    """One request's classification and width, from its start to its end."""

    __slots__ = ("arrived", "distinguisher", "key", "level", "schema", "user", "work")

    def __init__(self, schema: Schema, level: Level, distinguisher: str) -> None:
        self.schema = schema
        self.level = level
        self.distinguisher = distinguisher
        self.key = (schema.name, level.name)
        self.work: Work = ONE
        self.arrived = 0.0  # when it started waiting in a queue (the debug dump's ArriveTime)
        self.user = ""

    def hashed(self) -> int:
        digest = hashlib.blake2b(f"{self.schema.name}\0{self.distinguisher}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")


def _gauge(name: str, doc: str) -> Family:
    return Family("gauge", f"apiserver_flowcontrol_{name}", doc, ["priority_level"])


class Dispatcher:
    def __init__(self, limit: int, queue_wait: float = QUEUE_WAIT) -> None:
        self.limit = limit
        self.queue_wait = queue_wait
        self.classifier: Classifier | None = None  # None until the objects are read: nothing is limited
        self.levels: dict[str, Level] = {}
        self.nominal_sum = 0
        self.rejected = Family("counter", "apiserver_flowcontrol_rejected_requests",
                               "Requests refused by API Priority and Fairness, by reason.", [*_LABELS, "reason"])
        self.dispatched = Family("counter", "apiserver_flowcontrol_dispatched_requests",
                                 "Requests that started executing.", _LABELS)
        self.inqueue = Family("gauge", "apiserver_flowcontrol_current_inqueue_requests",
                              "Requests waiting in a queue.", _LABELS)
        self.executing = Family("gauge", "apiserver_flowcontrol_current_executing_requests",
                                "Requests executing.", _LABELS)
        self.executing_seats = Family("gauge", "apiserver_flowcontrol_current_executing_seats",
                                      "Seats taken by executing requests.", _LABELS)
        self.wait = Family("histogram", "apiserver_flowcontrol_request_wait_duration_seconds",
                           "Time a request waited for a seat, by whether it then executed.",
                           [*_LABELS, "execute"], _WAIT_BUCKETS)
        self.nominal = _gauge("nominal_limit_seats", "Each priority level's nominal seats in this API process.")
        self.lower = _gauge("lower_limit_seats", "Each priority level's nominal seats less what it may lend.")
        self.upper = _gauge("upper_limit_seats", "Each priority level's nominal seats plus what it may borrow.")
        self.current = _gauge("current_limit_seats", "Each priority level's seats now, after lending and borrowing.")
        self.demand_high = _gauge("demand_seats_high_watermark", "Seat demand's maximum in the last period.")
        self.demand_avg = _gauge("demand_seats_average", "Seat demand's time-weighted average in the last period.")
        self.demand_stdev = _gauge("demand_seats_stdev", "Seat demand's deviation in the last period.")
        self.demand_smoothed = _gauge("demand_seats_smoothed", "Seat demand, smoothed over the periods.")
        self.target_seats = _gauge("target_seats", "What borrowing aimed to give each priority level.")
        self.fair_frac = Family("gauge", "apiserver_flowcontrol_seat_fair_frac",
                                "The fair fraction of each level's target it was given.", [])
        self.families = [self.rejected, self.dispatched, self.inqueue, self.executing, self.executing_seats,
                         self.wait, self.nominal, self.lower, self.upper, self.current, self.demand_high,
                         self.demand_avg, self.demand_stdev, self.demand_smoothed, self.target_seats,
                         self.fair_frac]

    def configure(self, schemas: list[Obj], levels: list[Obj]) -> None:
        """Take the current FlowSchemas and PriorityLevelConfigurations."""
        share_sum = 0
        for obj in levels:
            spec = obj.get("spec") or {}
            part = spec.get("limited") if spec.get("type") == "Limited" else spec.get("exempt")
            share_sum += int((part or {}).get("nominalConcurrencyShares") or 0)
        current: dict[str, Level] = {}
        for obj in levels:
            meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
            name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
            exempt = spec.get("type") != "Limited"
            part = (spec.get("exempt") if exempt else spec.get("limited")) or {}
            # An exempt level has no borrowingLimitPercent: upstream lets it take the whole limit.
            bounds = borrowing.bounds(self.limit, int(part.get("nominalConcurrencyShares") or 0), share_sum,
                                      _percent(part, "lendablePercent"), _percent(part, "borrowingLimitPercent"))
            shape = Shape(bounds.nominal, exempt=True) if exempt else _shape(bounds.nominal, part)
            level = self.levels.get(name)
            if level is None or level.exempt != exempt:
                level = Level(name, uid, exempt, QueueSet(shape), bounds, bounds.nominal - bounds.lendable // 2)
            else:
                level.uid = uid
                level.seats.reshape(shape)  # its limit: below (adjust)
                level.bounds = bounds
            level.max_seats = level_max_seats(bounds.nominal, shape.hand_size) if shape.queues else 0
            current[name] = level
        self.levels = current
        self.nominal_sum = sum(lv.bounds.nominal for lv in current.values())
        for f in (self.nominal, self.lower, self.upper):
            f.values.clear()
        for name, level in current.items():
            self.nominal.values[(name,)] = level.bounds.nominal
            self.lower.values[(name,)] = level.bounds.lower
            self.upper.values[(name,)] = level.bounds.upper
        self.adjust()
        self.classifier = Classifier((compile_schema(o) for o in schemas), current)

    def adjust(self) -> None:
        """Share the nominal seats out again by the levels' seat demand since the last time."""
        levels = list(self.levels.values())
        items = []
        for level in levels:
            level.stats.update(*level.seats.demand.reset())
            b = level.bounds
            floor = max(b.lower, min(b.nominal, level.stats.high_watermark))
            items.append(Item(floor, b.upper, max(floor, level.stats.smoothed)))
        found = borrowing.allocate(self.nominal_sum, items)
        allocs, fair = found if found is not None else ([float(lv.current) for lv in levels], 0.0)
        for f in (self.current, self.demand_high, self.demand_avg, self.demand_stdev, self.demand_smoothed,
                  self.target_seats):
            f.values.clear()
        for level, alloc, item in zip(levels, allocs, items, strict=True):
            level.current = borrowing.round_half_away(alloc)
            level.target = item.target
            if not level.exempt:
                level.seats.set_limit(level.current)
            key = (level.name,)
            st = level.stats
            self.current.values[key] = level.current
            self.demand_high.values[key] = st.high_watermark
            self.demand_avg.values[key] = st.avg
            self.demand_stdev.values[key] = st.stdev
            self.demand_smoothed.values[key] = st.smoothed
            self.target_seats.values[key] = item.target
        self.fair_frac.values[()] = fair

    async def run(self, period: float = borrowing.PERIOD) -> None:
        """Adjust the levels' seats every ``period`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(period)
            self.adjust()

    def classify(self, user: User, d: Decoded) -> Flow | None:
        if self.classifier is None:
            return None
        schema, distinguisher = self.classifier.classify(user, d)
        level = self.levels.get(schema.level)
        if level is None:  # the fallback catch-all while its level is being recreated
            return None
        return Flow(schema, level, distinguisher)

    def admit_now(self, flow: Flow) -> bool:
        """Take the seats at once (True), or say the request must wait or be refused (False)."""
        if not flow.level.seats.try_take(flow.work.seats):
            return False
        self._started(flow, 0.0)
        return True

    async def admit(self, flow: Flow) -> None:
        """Wait for the seats, or 429 (the level rejects, its queue is full, or the wait is too long)."""
        started = time.perf_counter()
        flow.arrived = time.time()
        key = flow.key
        self.inqueue.add(key)
        try:
            await flow.level.seats.wait(flow.hashed(), self.queue_wait, flow.work.seats, flow)
        except Rejected as exc:
            self.rejected.add((*key, exc.reason))
            self.wait.observe((*key, "false"), time.perf_counter() - started)
            raise too_many() from None
        except BaseException:  # the client went away while waiting
            self.rejected.add((*key, "cancelled"))
            self.wait.observe((*key, "false"), time.perf_counter() - started)
            raise
        finally:
            self.inqueue.add(key, -1)
        self._started(flow, time.perf_counter() - started)

    def _started(self, flow: Flow, waited: float) -> None:
        key = flow.key
        self.dispatched.add(key)
        self.executing.add(key)
        self.executing_seats.add(key, flow.work.seats)
        self.wait.observe((*key, "true"), waited)

    def done(self, flow: Flow) -> None:
        """The request ended; its seats come free now, or after its additional latency (the
        work its watch events cause)."""
        work = flow.work
        seats = work.seats
        if work.latency > 0:
            asyncio.get_running_loop().call_later(work.latency, self._free, flow.level, flow.key, seats)
            self.executing.add(flow.key, -1)
            return
        flow.level.seats.release(seats)
        key = flow.key
        self.executing.add(key, -1)
        self.executing_seats.add(key, -seats)

    def _free(self, level: Level, key: tuple[str, str], seats: int) -> None:
        level.seats.release(seats)
        self.executing_seats.add(key, -seats)


def too_many() -> APIError:
    return errors.too_many_requests(1)
