"""A service's update status, as Swarm's ``UpdateStatus`` (``docker service inspect``): the
server's update monitor (:mod:`bosun.controllers.updatemonitor`) writes it on the workload as
an annotation, and the CLI reads it to show and to wait for the verdict.

An annotation, not a status field: Deployments and DaemonSets have no field for it, and the
object's status belongs to its own controller. ``revision`` names the pod template the status
is about (a hash of ``spec.template``), so a new template is seen as a new update even when
the status still says "completed" for the previous one; an empty revision with state
``rollback_started`` means "the next template is the rollback's" (written with it in one
update, whoever rolls back: the monitor or ``bosun service rollback``). ``generation`` is the
workload's ``metadata.generation`` the state was entered at (the rolled-back or paused one):
a waiting CLI tells by it the verdict on its own update from the one on an earlier update,
which the annotation still shows until the monitor takes the new template up (timestamps,
of a second's grain and from two clocks, cannot tell them apart when the updates follow
each other within a second or two).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from bosun.compose import units
from bosun.compose.errors import ComposeError
from bosun.compose.translate.updates import UPDATE_ANNOTATION

JSON = dict[str, Any]
ANNOTATION = "bosun.io/update-status"
DEFAULT_MONITOR = 5.0  # Swarm's default update monitor, seconds

UPDATING, PAUSED, COMPLETED = "updating", "paused", "completed"
ROLLBACK_STARTED, ROLLBACK_PAUSED, ROLLBACK_COMPLETED = "rollback_started", "rollback_paused", "rollback_completed"
IN_PROGRESS = frozenset({UPDATING, ROLLBACK_STARTED})
FAILED = frozenset({PAUSED, ROLLBACK_STARTED, ROLLBACK_PAUSED, ROLLBACK_COMPLETED})


@dataclass(slots=True)
class UpdateStatus:
    state: str = ""  # "" before the first update: Swarm shows no UpdateStatus then either
    revision: str = ""
    started_at: str = ""
    completed_at: str = ""
    message: str = ""
    saved_strategy: str = ""  # a paused DaemonSet's updateStrategy (JSON), put back when it resumes
    generation: str = ""  # the workload's generation this state began at ("" from a server before it)

    @classmethod
    def of(cls, obj: JSON) -> UpdateStatus | None:
        """The status the workload carries; None when it has none (or an unreadable one)."""
        text = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        names = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in names})

    def dump(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v}, sort_keys=True)

    def docker(self) -> JSON:
        """As ``docker service inspect`` prints it."""
        out: JSON = {"State": self.state, "Message": self.message}
        if self.started_at:
            out["StartedAt"] = self.started_at
        if self.completed_at:
            out["CompletedAt"] = self.completed_at
        return out


def rfc3339_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generation(obj: JSON) -> str:
    """The workload's ``metadata.generation``, as the status keeps it."""
    return str((obj.get("metadata") or {}).get("generation") or "")


def revision(obj: JSON) -> str:
    """A short hash of the workload's pod template (what a rollout changes)."""
    template = (obj.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def update_config(obj: JSON) -> JSON:
    """update_config as the translation kept it (bosun.io/update-config)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(UPDATE_ANNOTATION) or "{}"
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def failure_action(obj: JSON) -> str:
    return str(update_config(obj).get("failure_action") or "pause")


def monitor(obj: JSON) -> float:
    value = update_config(obj).get("monitor")
    try:
        return units.seconds(value, "update_config.monitor") if value is not None else DEFAULT_MONITOR
    except ComposeError:
        return DEFAULT_MONITOR


def max_failure_ratio(obj: JSON) -> float:
    try:
        return float(update_config(obj).get("max_failure_ratio") or 0)
    except (TypeError, ValueError):
        return 0.0
