"""Getting notifications through to one integration that may be down: one :class:`Courier`
per integration sends its groups' latest messages in turn, and after a failure waits with
exponential back-off (``retryInitial`` doubling to ``retryMax``) before trying again, for as
long as it takes. A newer message for the same group replaces the one waiting, so the
receiver hears the current state when it comes back, once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bosun.aio import cancel_and_wait
from bosun.alerting.notify import Notification
from bosun.alerting.receivers import DeliveryError, Integration

log = logging.getLogger(__name__)

Sent = Callable[[Notification, float], None]
Failed = Callable[[Integration, Notification, str], None]


class Courier:
    def __init__(self, integration: Integration, on_sent: Sent, on_failed: Failed,
                 retry_initial: float = 1.0, retry_max: float = 60.0) -> None:
        self.integration = integration
        self.on_sent, self.on_failed = on_sent, on_failed
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.pending: dict[str, Notification] = {}
        self.failures = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, note: Notification) -> None:
        self.pending[note.group_key] = note
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"alert-courier-{self.integration.id}")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        delay = self.retry_initial
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                key, note = next(iter(self.pending.items()))
                try:
                    await self.integration.send(note)
                except DeliveryError as e:
                    self.failures += 1
                    self.on_failed(self.integration, note, str(e))
                    # Sleep, but wake early for nothing: a newer message just replaces this one.
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max)
                    continue
                except Exception as e:  # a bug in one integration must not end delivery for all
                    log.exception("alert integration %s failed", self.integration.id)
                    self.on_failed(self.integration, note, f"{type(e).__name__}: {e}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max)
                    continue
                delay = self.retry_initial
                if self.pending.get(key) is note:
                    del self.pending[key]
                self.on_sent(note, time.time())
