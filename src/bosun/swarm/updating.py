"""What happens when an update does not converge: update_config.failure_action decides,
as in Swarm. ``pause`` leaves the service as it is and reports the failure, ``continue``
only reports it, ``rollback`` puts the previous spec back and reports why."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from bosun.client.rest import Client
from bosun.compose import units
from bosun.compose.errors import ComposeError
from bosun.compose.translate.updates import UPDATE_ANNOTATION
from bosun.swarm.converge import converge
from bosun.swarm.rollback import NoPrevious, roll_back
from bosun.swarm.services import ServiceRef


class UpdateFailed(Exception):
    """The update failed (paused or rolled back); the message names the service and why."""


DEFAULT_MONITOR = 5.0  # Swarm's default update monitor, seconds


def update_config(svc: ServiceRef) -> dict[str, Any]:
    ann = ((svc.obj.get("metadata") or {}).get("annotations") or {}).get(UPDATE_ANNOTATION) or "{}"
    try:
        value = json.loads(ann)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def failure_action(svc: ServiceRef) -> str:
    return str(update_config(svc).get("failure_action") or "pause")


def monitor(svc: ServiceRef) -> float:
    value = update_config(svc).get("monitor")
    try:
        return units.seconds(value, "update_config.monitor") if value is not None else DEFAULT_MONITOR
    except ComposeError:
        return DEFAULT_MONITOR


def started() -> dt.datetime:
    """The moment an update starts, a little early so the server's timestamps compare safely."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


async def follow_update(client: Client, svc: ServiceRef, since: dt.datetime, say: Callable[[str], None],
                        within: float) -> None:
    """Wait for the update that began at ``since``; act on a failure as the service asks.
    Raises :class:`UpdateFailed` unless the action is ``continue``."""
    outcome = await converge(client, svc, say, within, since, monitor(svc))
    if outcome.converged:
        return
    reason = outcome.failure or f"not converged within {within:g}s"
    action = failure_action(svc)
    if action == "continue":
        say(f"update continues despite: {reason}")
        return
    if action == "rollback":
        try:
            await roll_back(client, svc)
        except NoPrevious as e:
            raise UpdateFailed(f"service {svc.display}: update failed ({reason}) and {e}") from None
        say(f"rollback: update rolled back due to failure or early termination of {reason}")
        await converge(client, svc, say, within)
        raise UpdateFailed(f"service {svc.display}: update rolled back: {reason}")
    raise UpdateFailed(f"service {svc.display}: update paused due to failure or early termination of {reason}")
