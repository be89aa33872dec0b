"""Recording core/v1 Events, as client-go's EventRecorder does.

Components call :meth:`EventRecorder.event` from reconcile code that must never fail or
block because of an event: the call only queues (no request, no lookup); a few background
tasks write. Repeats of the
same (object, type, reason, message) within ten minutes bump ``count`` and
``lastTimestamp`` of one Event instead of creating thousands, which is what `kubectl
describe` shows as ``(x12 over 3m)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bosun.api.kinds import Kind, by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client, resource_path

log = logging.getLogger(__name__)

_events = by_plural("", "v1", "events")
assert _events is not None
EVENTS: Kind = _events
AGGREGATE_SECONDS = 600.0
MAX_PENDING = 10000
# client-go's spam filter: per object and reason, a burst of 25 events, then one per 5 min.
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0


_clock: tuple[int, str] = (0, "")


def _now() -> str:
    """RFC 3339 to the second, formatted once per second (a scheduler records hundreds a second)."""
    global _clock
    second = int(time.time())
    if _clock[0] != second:
        _clock = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _clock[1]


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first: str
    at: float


@dataclass(slots=True)
class _Pending:
    """Occurrences of one event not yet written: repeats only bump ``count``."""

    involved: dict[str, Any]
    type_: str
    reason: str
    message: str
    first: str
    last: str
    count: int = 1


def _involved(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata") or {}
    return {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""), "name": m.get("name", ""),
            "namespace": m.get("namespace", ""), "uid": m.get("uid", ""),
            "resourceVersion": m.get("resourceVersion", "")}


class EventRecorder:
    """Queues events and writes them from ``writers`` background tasks.

    The queue holds one entry per distinct event (object, type, reason, message): repeats
    that arrive before it is written only bump the entry's count, so a burst costs one write.
    Several writers keep a busy component's events (a scheduler records one per pod) from
    trailing behind one round trip at a time; one event is never written by two at once.
    """

    def __init__(self, client: Client, component: str, host: str = "", writers: int = 4) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.writers = max(1, writers)
        self._keys: asyncio.Queue[str] = asyncio.Queue()
        self._pending: dict[str, _Pending] = {}
        self._writing: set[str] = set()
        self._seen: dict[str, _Seen] = {}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0  # events refused because MAX_PENDING were waiting

    def _allow(self, obj: dict[str, Any], reason: str) -> bool:
        """Token bucket per (object, reason): a controller creating 10,000 pods writes 25
        SuccessfulCreate events, not 10,000, and one burst cannot flood the API."""
        m = obj.get("metadata") or {}
        key = (m.get("uid") or m.get("name") or "", reason)
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(SPAM_BURST), now))
        tokens = min(float(SPAM_BURST), tokens + (now - last) / SPAM_REFILL_SECONDS)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 8192:  # forget the quietest half
            for k in sorted(self._buckets, key=lambda k: self._buckets[k][1])[:4096]:
                del self._buckets[k]
        return True

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Queue an event about ``obj`` (type "Normal" or "Warning"). Never raises."""
        m = obj.get("metadata") or {}
        key = "\x00".join((m.get("uid", ""), m.get("name", ""), type_, reason, message))
        pending = self._pending.get(key)
        if pending is not None:
            pending.count += 1  # written together with the occurrence already waiting
            pending.last = _now()
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return  # events are best effort: never let them grow memory without bound
        if not self._allow(obj, reason):
            return
        if not self._start():
            return
        now = _now()
        self._pending[key] = _Pending(_involved(obj), type_, reason, message, now, now)
        if key not in self._writing:
            self._keys.put_nowait(key)

    def _start(self) -> bool:
        if len(self._tasks) == self.writers and not any(t.done() for t in self._tasks):
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop: drop
            return False
        self._tasks = [t for t in self._tasks if not t.done()]
        while len(self._tasks) < self.writers:
            self._tasks.append(loop.create_task(self._run(), name="events"))
        return True

    async def flush(self) -> None:
        """Wait until every queued event has been written (tests, shutdown)."""
        await self._keys.join()

    async def close(self) -> None:
        from bosun.aio import cancel_and_wait

        for t in self._tasks:
            await cancel_and_wait(t)
        self._tasks.clear()

    async def _run(self) -> None:
        while True:
            key = await self._keys.get()
            pending = self._pending.pop(key, None)
            try:
                if pending is not None:
                    self._writing.add(key)
                    await self._write(key, pending)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API may be away: events are best effort
                log.debug("could not record event: %s", exc)
            finally:
                self._writing.discard(key)
                if key in self._pending:  # it happened again while being written
                    self._keys.put_nowait(key)
                self._keys.task_done()

    async def _write(self, key: str, p: _Pending) -> None:
        involved = p.involved
        namespace = involved["namespace"] or "default"
        seen = self._seen.get(key)
        now = time.monotonic()
        if seen is not None and now - seen.at < AGGREGATE_SECONDS:
            seen.count += p.count
            seen.at = now
            try:
                await self.client.request_raw(
                    "PATCH", self._path(namespace, seen.name), body={"count": seen.count, "lastTimestamp": p.last},
                    content_type="application/merge-patch+json")
                return
            except ApiError as exc:
                if exc.status != 404:
                    raise
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        name = f"{involved['name'] or 'unknown'}.{digest}{int(time.time() * 1000) % 100000:05d}"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name[:253], "namespace": namespace},
            "involvedObject": involved,
            "type": p.type_, "reason": p.reason, "message": p.message,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component, "reportingInstance": self.host or self.component,
            "firstTimestamp": p.first, "lastTimestamp": p.last, "count": p.count,
        }
        # Nothing reads the created Event back: skip decoding the answer.
        await self.client.request_raw("POST", self._path(namespace), body=body)
        self._seen[key] = _Seen(name, namespace, p.count, p.first, now)
        if len(self._seen) > 4096:  # forget what can no longer aggregate, then the oldest
            for k in [k for k, v in self._seen.items() if now - v.at >= AGGREGATE_SECONDS]:
                del self._seen[k]
            if len(self._seen) > 4096:
                for k in sorted(self._seen, key=lambda k: self._seen[k].at)[:2048]:
                    del self._seen[k]

    @staticmethod
    def _path(namespace: str, name: str | None = None) -> str:
        return resource_path(EVENTS, namespace, name)
