"""Recording core/v1 Events, as client-go's EventRecorder does.

Components call :meth:`EventRecorder.event` from reconcile code that must never fail or
block because of an event: the call only queues; a background task writes. Repeats of the
same (object, type, reason, message) within ten minutes bump ``count`` and
``lastTimestamp`` of one Event instead of creating thousands, which is what `kubectl
describe` shows as ``(x12 over 3m)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bosun.api.registry import Resource, by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

log = logging.getLogger(__name__)

_events = by_plural("", "v1", "events")
assert _events is not None
EVENTS: Resource = _events
AGGREGATE_SECONDS = 600.0
MAX_PENDING = 10000
# client-go's spam filter: per object and reason, a burst of 25 events, then one per 5 min.
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first: str
    at: float


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, str, str]] = asyncio.Queue()
        self._seen: dict[str, _Seen] = {}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._task: asyncio.Task[None] | None = None

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
        if self._queue.qsize() >= MAX_PENDING:
            return  # events are best effort: never let them grow memory without bound
        if not self._allow(obj, reason):
            return
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: drop
                self._task = asyncio.get_running_loop().create_task(self._run(), name="events")
        self._queue.put_nowait((obj, type_, reason, message, _now()))

    async def flush(self) -> None:
        """Wait until every queued event has been written (tests, shutdown)."""
        await self._queue.join()

    async def close(self) -> None:
        from bosun.aio import cancel_and_wait

        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._write(*item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API may be away: events are best effort
                log.debug("could not record event: %s", exc)
            finally:
                self._queue.task_done()

    async def _write(self, obj: dict[str, Any], type_: str, reason: str, message: str, when: str) -> None:
        m = obj.get("metadata") or {}
        namespace = m.get("namespace") or "default"
        key = "\x00".join((m.get("uid", ""), m.get("name", ""), type_, reason, message))
        seen = self._seen.get(key)
        now = time.monotonic()
        if seen is not None and now - seen.at < AGGREGATE_SECONDS:
            seen.count += 1
            seen.at = now
            try:
                await self.client.patch(EVENTS, seen.name, {"count": seen.count, "lastTimestamp": when},
                                        seen.namespace)
                return
            except ApiError as exc:
                if exc.status != 404:
                    raise
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        name = f"{m.get('name', 'unknown')}.{digest}{int(time.time() * 1000) % 100000:05d}"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name[:253], "namespace": namespace},
            "involvedObject": {
                "kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
                "name": m.get("name", ""), "namespace": m.get("namespace", ""), "uid": m.get("uid", ""),
                "resourceVersion": m.get("resourceVersion", ""),
            },
            "type": type_, "reason": reason, "message": message,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component, "reportingInstance": self.host or self.component,
            "firstTimestamp": when, "lastTimestamp": when, "count": 1,
        }
        await self.client.create(EVENTS, body, namespace)
        self._seen[key] = _Seen(name, namespace, 1, when, now)
        if len(self._seen) > 4096:  # forget what can no longer aggregate, then the oldest
            for k in [k for k, v in self._seen.items() if now - v.at >= AGGREGATE_SECONDS]:
                del self._seen[k]
            if len(self._seen) > 4096:
                for k in sorted(self._seen, key=lambda k: self._seen[k].at)[:2048]:
                    del self._seen[k]
