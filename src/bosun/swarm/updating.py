"""Following an update to its verdict. The server's update monitor
(:mod:`bosun.controllers.updatemonitor`) applies update_config (monitor, max_failure_ratio,
failure_action) whether or not anyone waits; a waiting CLI shows the progress and reports the
monitor's verdict from the workload's update status: ``completed``, ``paused`` (the rollout
stopped where it was), rolled back (the previous spec is back), or a failure it continues
despite."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bosun.client.rest import Client
from bosun.swarm.converge import converge
from bosun.swarm.services import ServiceRef
from bosun.swarm.update_status import (
    COMPLETED,
    PAUSED,
    ROLLBACK_COMPLETED,
    ROLLBACK_PAUSED,
    ROLLBACK_STARTED,
    UPDATING,
    UpdateStatus,
    revision,
)

ROLLED_BACK = "update rolled back due to failure or early termination of "
ROLLBACK_STATES = frozenset({ROLLBACK_STARTED, ROLLBACK_COMPLETED, ROLLBACK_PAUSED})


class UpdateFailed(Exception):
    """The update failed (paused or rolled back); the message names the service and why."""


@dataclass(frozen=True, slots=True)
class UpdateStart:
    """What a waiting CLI knows of the workload just before it writes its update: until the
    monitor takes the new template up, the workload still shows the verdict on the update
    before (a rollback of the same template, seconds ago), which must not be taken for this
    one's."""

    generation: int  # the workload's metadata.generation before the write (0: a new one)
    revision: str  # its pod template's, to tell an update that changes none
    at: dt.datetime  # for a status from a server that records no generation


def started() -> dt.datetime:
    """The moment an update starts, a little early so the server's timestamps compare safely."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


def start_of(before: dict[str, Any] | None) -> UpdateStart:
    """Taken from the workload as read for the write (None when the write creates it)."""
    obj = before or {}
    return UpdateStart(int((obj.get("metadata") or {}).get("generation") or 0), revision(obj), started())


def _after(stamp: str, since: dt.datetime) -> bool:
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= since
    except ValueError:
        return False


def _of_this_update(st: UpdateStatus, start: UpdateStart, stamp: str) -> bool:
    """Whether a pause or rollback is this update's: the generation it stopped is past the
    one the update was written on (the write made the next). Timestamps alone cannot tell
    when the update follows a rollback within a second or two (a second's grain, and the
    slack ``started`` gives two clocks), so they only judge a status that has no generation."""
    if st.generation.isdigit():
        return int(st.generation) > start.generation
    return _after(stamp, start.at)


async def follow_update(client: Client, svc: ServiceRef, start: UpdateStart, say: Callable[[str], None],
                        within: float) -> None:
    """Wait for the verdict on the update written after ``start`` (``svc.obj``: the workload as
    written, or read just after). Raises :class:`UpdateFailed` when it was paused or rolled
    back, or did not converge within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: tuple[int, int] | None = None
    rolls = revision(svc.obj) != start.revision  # the write gave the service a new template
    while True:
        obj = await client.get(svc.kind.resource, svc.name, svc.namespace)
        done, want, converged = svc.kind.progress(obj)
        if (done, want) != last:
            say(f"overall progress: {done} out of {want} tasks")
            last = (done, want)
        st = UpdateStatus.of(obj)
        if st is not None and st.state in ROLLBACK_STATES and _of_this_update(st, start, st.started_at):
            say(f"rollback: {st.message}")
            await converge(client, svc, say, within)
            raise UpdateFailed(f"service {svc.display}: update rolled back: {st.message.removeprefix(ROLLED_BACK)}")
        if st is None or not rolls or (not st.state and st.revision == revision(obj)):
            # No update monitor runs (a server started without it), the write changed no
            # template (no task is replaced: the status is still the update before's), or the
            # monitor took this template for the service's first: convergence is all there is
            # to wait for.
            if converged:
                say(f"verify: Service {svc.display} converged")
                return
        elif st.revision == revision(obj):
            if st.state == PAUSED and _of_this_update(st, start, st.completed_at):
                raise UpdateFailed(f"service {svc.display}: {st.message}")
            if st.state == COMPLETED and converged:
                say(f"verify: Service {svc.display} converged")
                return
            if st.state == UPDATING and st.message.startswith("update continues"):
                say(st.message)
                return
        if loop.time() >= deadline:
            raise UpdateFailed(f"service {svc.display}: not converged within {within:g}s")
        await asyncio.sleep(0.3)
