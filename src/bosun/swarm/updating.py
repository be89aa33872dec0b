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


class UpdateFailed(Exception):
    """The update failed (paused or rolled back); the message names the service and why."""


def started() -> dt.datetime:
    """The moment an update starts, a little early so the server's timestamps compare safely."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


def _after(stamp: str, since: dt.datetime) -> bool:
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= since
    except ValueError:
        return False


async def follow_update(client: Client, svc: ServiceRef, since: dt.datetime, say: Callable[[str], None],
                        within: float) -> None:
    """Wait for the verdict on the update written at ``since``. Raises :class:`UpdateFailed`
    when it was paused or rolled back, or did not converge within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: tuple[int, int] | None = None
    while True:
        obj = await client.get(svc.kind.resource, svc.name, svc.namespace)
        done, want, converged = svc.kind.progress(obj)
        if (done, want) != last:
            say(f"overall progress: {done} out of {want} tasks")
            last = (done, want)
        st = UpdateStatus.of(obj)
        if st is None or (not st.state and st.revision == revision(obj)):
            # No update monitor runs (a server started without it), or it took this template
            # for the service's first: convergence is all there is to wait for.
            if converged:
                say(f"verify: Service {svc.display} converged")
                return
        elif st.state in (ROLLBACK_STARTED, ROLLBACK_COMPLETED, ROLLBACK_PAUSED) and _after(st.started_at, since):
            say(f"rollback: {st.message}")
            await converge(client, svc, say, within)
            raise UpdateFailed(f"service {svc.display}: update rolled back: {st.message.removeprefix(ROLLED_BACK)}")
        elif st.revision == revision(obj):
            if st.state == PAUSED and _after(st.completed_at, since):
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
