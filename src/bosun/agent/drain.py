"""Stopping every pod of a node at once: `bosun up`'s exit (and any agent told to drain).

Why a module: the pods of a stopping node must stop in parallel, each within its own
``terminationGracePeriodSeconds`` (preStop first, then SIGTERM, SIGKILL when the grace is
up), so that the whole stop takes the longest grace period rather than their sum (100 pods
stopped one after another with 5 s each took 8 minutes). While it waits, the user is told
what for, every few seconds; and a second Ctrl-C must be able to end the wait at once,
leaving the rest for the next start to adopt or remove.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
REPORT_EVERY = 5.0
SHOWN = 5  # pod names named in one progress line


@dataclass
class StopJob:
    """One pod to stop: its name for the user, its grace period, and how to stop it."""

    name: str
    grace: float
    stop: Callable[[], Awaitable[None]]


class Drain:
    """Runs the jobs of one drain together; :meth:`hurry` cancels what is still running."""

    def __init__(self, report: Callable[[str], None] | None = None, every: float = REPORT_EVERY) -> None:
        self.report = report or (lambda msg: log.info("%s", msg))
        self.every = every
        self.hurried = False
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def pending(self) -> list[str]:
        return sorted(name for name, t in self._tasks.items() if not t.done())

    async def run(self, jobs: list[StopJob]) -> None:
        if not jobs or self.hurried:
            return
        longest = max(j.grace for j in jobs)
        deadline = time.monotonic() + longest
        self.report(f"stopping {len(jobs)} pod(s), each within its grace period (longest {longest:g} s)")
        for job in jobs:
            self._tasks[job.name] = asyncio.create_task(self._one(job), name=f"stop-{job.name}")
        reporter = asyncio.create_task(self._progress(deadline))
        t0 = time.monotonic()
        try:
            await asyncio.wait(self._tasks.values())
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        if not self.hurried:
            self.report(f"stopped {len(jobs)} pod(s) in {time.monotonic() - t0:.1f} s")

    def hurry(self) -> list[str]:
        """Stop waiting: cancel every stop still running; returns the pods left as they are."""
        self.hurried = True
        left = self.pending
        for t in self._tasks.values():
            t.cancel()
        return left

    async def _one(self, job: StopJob) -> None:
        try:
            await job.stop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stopping pod %s failed (the next start removes what is left)", job.name)

    async def _progress(self, deadline: float) -> None:
        while True:
            await asyncio.sleep(self.every)
            left = self.pending
            if not left:
                return
            names = ", ".join(left[:SHOWN]) + (f" and {len(left) - SHOWN} more" if len(left) > SHOWN else "")
            remaining = deadline - time.monotonic()
            when = f"{remaining:.0f} s of grace left" if remaining > 0 else "grace over, killing"
            self.report(f"waiting for {len(left)} pod(s) to stop ({when}; Ctrl-C again to leave them "
                        f"for the next start): {names}")
