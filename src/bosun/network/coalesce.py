"""One loop for node components that rebuild kernel or daemon state from watched objects.

The service proxy (nftables) and the ingress (nginx) both turn a stream of watch events
into costly transactions: an nftables commit, an nginx test and reload. Each event only
wakes this loop; a sync starts a few milliseconds after the first event, so that the
events of one change (a rollout touches slices many times a second) go together, and at
most every ``min_interval`` seconds. A failed sync is tried again, with the pause doubled
each time up to ``max_retry_pause``, so a broken kernel or daemon is not hammered.

A component that must also notice what no event announces (nginx killed behind its back)
passes ``on_quiet``: it is called after ``quiet_seconds`` without an event and says
whether a sync is needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

BATCH_DELAY = 0.005  # after the first event, so that the events of one change go together


@dataclass
class Pacing:
    min_interval: float  # seconds between the starts of two syncs
    max_retry_pause: float  # the longest pause after failed syncs
    quiet_seconds: float | None = None  # how often ``on_quiet`` is asked; None: never


async def run_coalesced(
    wake: asyncio.Event,
    sync: Callable[[], Awaitable[None]],
    pacing: Pacing,
    log: logging.Logger,
    what: str,
    on_quiet: Callable[[], bool] | None = None,
) -> None:
    """Run ``sync`` whenever ``wake`` is set, paced as the module says; never returns."""
    pause = pacing.min_interval
    while True:
        if on_quiet is None or pacing.quiet_seconds is None:
            await wake.wait()
        else:
            try:
                await asyncio.wait_for(wake.wait(), pacing.quiet_seconds)
            except TimeoutError:
                if not on_quiet():
                    continue
        await asyncio.sleep(BATCH_DELAY)
        wake.clear()
        started = time.monotonic()
        try:
            await sync()
            pause = pacing.min_interval
        except Exception:
            log.exception("%s failed (next try in %.1f s)", what, pause)
            wake.set()
            pause = min(pause * 2, pacing.max_retry_pause)
        await asyncio.sleep(max(0.0, pause - (time.monotonic() - started)))
