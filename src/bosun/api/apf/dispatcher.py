"""API Priority and Fairness for one API process: classify, then take a seat, wait for one,
or be refused 429; and the ``apiserver_flowcontrol_*`` metrics that say what happened.

Each Limited level's nominal seats are upstream's ``ceil(limit * shares / sum of shares)``
(at least one), ``limit`` being this process's part of the server's concurrency limit
(:func:`process_share`). An Exempt level has no limit and never queues.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from bosun.api import errors
from bosun.api.apf.classify import Classifier, Schema, compile_schema
from bosun.api.apf.queueset import QueueSet, Rejected, Shape
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
    seats: QueueSet  # unused by an exempt level


def _shape(limit: int, shares: int, share_sum: int, limited: Obj) -> Shape:
    seats = max(1, math.ceil(limit * shares / share_sum)) if share_sum else 1
    response = limited.get("limitResponse") or {}
    if response.get("type") != "Queue":
        return Shape(seats)
    q = response.get("queuing") or {}
    return Shape(seats, int(q.get("queues", 64)), int(q.get("handSize", 8)), int(q.get("queueLengthLimit", 50)))


class Flow:
    """One request's classification, from its start to its end."""

    __slots__ = ("distinguisher", "key", "level", "schema")

    def __init__(self, schema: Schema, level: Level, distinguisher: str) -> None:
        self.schema = schema
        self.level = level
        self.distinguisher = distinguisher
        self.key = (schema.name, level.name)

    def hashed(self) -> int:
        digest = hashlib.blake2b(f"{self.schema.name}\0{self.distinguisher}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")


class Dispatcher:
    def __init__(self, limit: int, queue_wait: float = QUEUE_WAIT) -> None:
        self.limit = limit
        self.queue_wait = queue_wait
        self.classifier: Classifier | None = None  # None until the objects are read: nothing is limited
        self.levels: dict[str, Level] = {}
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
        self.nominal = Family("gauge", "apiserver_flowcontrol_nominal_limit_seats",
                              "Each priority level's nominal seats in this API process.", ["priority_level"])
        self.families = [self.rejected, self.dispatched, self.inqueue, self.executing, self.executing_seats,
                         self.wait, self.nominal]

    def configure(self, schemas: list[Obj], levels: list[Obj]) -> None:
        """Take the current FlowSchemas and PriorityLevelConfigurations."""
        share_sum = 0
        for obj in levels:
            spec = obj.get("spec") or {}
            part = spec.get("limited") if spec.get("type") == "Limited" else spec.get("exempt")
            share_sum += int((part or {}).get("nominalConcurrencyShares") or 0)
        current: dict[str, Level] = {}
        self.nominal.values.clear()
        for obj in levels:
            meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
            name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
            exempt = spec.get("type") != "Limited"
            limited = spec.get("limited") or {}
            shape = Shape(0) if exempt else _shape(
                self.limit, int(limited.get("nominalConcurrencyShares") or 0), share_sum, limited)
            level = self.levels.get(name)
            if level is None or level.exempt != exempt:
                level = Level(name, uid, exempt, QueueSet(shape))
            else:
                level.uid = uid
                level.seats.reshape(shape)
            current[name] = level
            self.nominal.values[(name,)] = shape.seats
        self.levels = current
        self.classifier = Classifier((compile_schema(o) for o in schemas), current)

    def classify(self, user: User, d: Decoded) -> Flow | None:
        if self.classifier is None:
            return None
        schema, distinguisher = self.classifier.classify(user, d)
        level = self.levels.get(schema.level)
        if level is None:  # the fallback catch-all while its level is being recreated
            return None
        return Flow(schema, level, distinguisher)

    def admit_now(self, flow: Flow) -> bool:
        """Take a seat at once (True), or say the request must wait or be refused (False)."""
        level = flow.level
        if not level.exempt and not level.seats.try_take():
            return False
        self._started(flow, 0.0)
        return True

    async def admit(self, flow: Flow) -> None:
        """Wait for a seat, or 429 (the level rejects, its queue is full, or the wait is too long)."""
        started = time.perf_counter()
        key = flow.key
        self.inqueue.add(key)
        try:
            await flow.level.seats.wait(flow.hashed(), self.queue_wait)
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
        self.executing_seats.add(key)
        self.wait.observe((*key, "true"), waited)

    def done(self, flow: Flow) -> None:
        level = flow.level
        if not level.exempt:
            level.seats.release()
        key = flow.key
        self.executing.add(key, -1)
        self.executing_seats.add(key, -1)


def too_many() -> APIError:
    return errors.too_many_requests(1)
