"""The update monitor: Swarm's ``update_config`` (monitor, max_failure_ratio, failure_action)
acted on by the server, so a rollout is watched whether or not a CLI waits for it (``-d``, a
closed terminal, a stack deployed from CI).

For each Deployment and DaemonSet the Swarm front end made (label ``bosun.io/service``), the
update status (:mod:`bosun.swarm.update_status`, an annotation ``bosun service inspect``
shows) follows Swarm's states: a new pod template starts an update (``updating``); a task of
it that fails (crash, non-zero exit, image that cannot be pulled, a Deployment past its
progress deadline) counts against ``max_failure_ratio`` of the service's tasks, and once over
it ``failure_action`` decides: ``pause`` stops the rollout where it is (a Deployment's
``spec.paused``; a DaemonSet's strategy set to ``OnDelete``), ``rollback`` writes the
previous revision's template back (``rollback_started``), ``continue`` only reports. A
rollout that converged and stayed so for ``monitor`` seconds is ``completed`` (or
``rollback_completed``). A failed rollback pauses (``rollback_paused``). The next template the
user writes resumes a paused service. Each transition is also an Event on the workload.

The ``monitor`` window is watched once the whole rollout converged, rather than per task as
swarmkit does: Kubernetes rolls by ReplicaSet, not task by task, and minReadySeconds (the
translation sets it to ``monitor``) already holds each new task that long before the rollout
counts it available.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bosun.api.registry import Resource
from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.compose.translate.context import SERVICE_KEY
from bosun.controllers import deployment_util as du
from bosun.controllers._common import (
    PODS,
    Controller,
    Obj,
    condition,
    parse_time,
    resource,
    split_key,
    template_hash,
)
from bosun.swarm.converge import task_failure
from bosun.swarm.kinds import kind_of
from bosun.swarm.rollback import NoPrevious, mark_rollback, previous_template_of
from bosun.swarm.update_status import (
    ANNOTATION,
    COMPLETED,
    IN_PROGRESS,
    PAUSED,
    ROLLBACK_COMPLETED,
    ROLLBACK_PAUSED,
    ROLLBACK_STARTED,
    UPDATING,
    UpdateStatus,
    failure_action,
    generation,
    max_failure_ratio,
    monitor,
    revision,
    rfc3339_now,
)

log = logging.getLogger(__name__)
DEPLOYMENTS = resource("apps", "v1", "deployments")
DAEMONSETS = resource("apps", "v1", "daemonsets")
POD_INDEX = "swarm-service"


class Rollout(Protocol):
    """What differs between the kinds a service's update rolls: which tasks run the current
    template, and how a rollout is stopped and let go on."""

    @property
    def resource(self) -> Resource: ...

    def current(self, workload: Obj) -> Callable[[Obj], bool]:
        """Whether a pod runs the workload's current template: the template's identity is
        worked out once per workload, not once per pod (hashing a template per pod and per
        pod event made this controller a tenth of a rolling update's CPU)."""
        ...

    def pause(self, spec: Obj, status: UpdateStatus) -> None:
        """Change ``spec`` (a copy) so the rollout stops; may note in ``status`` what to restore."""
        ...

    def resume_patch(self, status: UpdateStatus) -> Obj: ...


@dataclass(frozen=True)
class DeploymentRollout:
    resource: Resource = DEPLOYMENTS

    def current(self, workload: Obj) -> Callable[[Obj], bool]:
        collisions = int((workload.get("status") or {}).get("collisionCount") or 0)
        current = template_hash(du.without_hash(workload["spec"].get("template") or {}), collisions)
        return lambda pod: ((pod.get("metadata") or {}).get("labels") or {}).get(du.HASH_LABEL) == current

    def pause(self, spec: Obj, status: UpdateStatus) -> None:
        spec["paused"] = True

    def resume_patch(self, status: UpdateStatus) -> Obj:
        return {"spec": {"paused": False}}


@dataclass(frozen=True)
class DaemonSetRollout:
    """A DaemonSet has no ``paused``: its strategy becomes ``OnDelete`` (no more replacements)
    and the one it had is kept in the status to be put back."""

    resource: Resource = DAEMONSETS

    def current(self, workload: Obj) -> Callable[[Obj], bool]:
        generation = str((workload.get("metadata") or {}).get("generation") or "")
        return lambda pod: (((pod.get("metadata") or {}).get("labels") or {}).get("pod-template-generation")
                            == generation)

    def pause(self, spec: Obj, status: UpdateStatus) -> None:
        if not status.saved_strategy:
            status.saved_strategy = json.dumps(spec.get("updateStrategy") or {}, sort_keys=True)
        spec["updateStrategy"] = {"type": "OnDelete"}

    def resume_patch(self, status: UpdateStatus) -> Obj:
        return {"spec": {"updateStrategy": json.loads(status.saved_strategy or "{}") or None}}


ROLLOUTS: dict[str, Rollout] = {r.resource.plural: r for r in (DeploymentRollout(), DaemonSetRollout())}
WORKLOADS = tuple(r.resource for r in ROLLOUTS.values())


def _service_key(obj: Obj) -> list[str]:
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_KEY)
    return [f"{meta.get('namespace')}/{name}"] if name else []


class UpdateMonitor(Controller):
    name = "update-monitor"
    workers = 2

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.workloads = {res.plural: ctx.informers.get(res) for res in WORKLOADS}
        self.pods = ctx.informers.get(PODS)
        self.pods.add_index(POD_INDEX, _service_key)
        self._converged: dict[str, float] = {}  # key -> when the rollout was first seen converged
        for res in WORKLOADS:
            self.workloads[res.plural].add_handler(
                lambda o, r=res: self._queue(r, o), lambda _o, n, r=res: self._queue(r, n),
                lambda o, r=res: self._queue(r, o))  # reconcile forgets a workload that is gone
        self.pods.add_handler(self._pod, lambda _o, n: self._pod(n), self._pod)

    def _queue(self, res: Resource, obj: Obj) -> None:
        if _service_key(obj):
            meta = obj["metadata"]
            self.queue.add(f"{res.plural}|{meta.get('namespace')}/{meta['name']}")

    def _pod(self, pod: Obj) -> None:
        for key in _service_key(pod):
            for res in WORKLOADS:
                if self.workloads[res.plural].get_by_key(key) is not None:
                    self.queue.add(f"{res.plural}|{key}")

    async def reconcile(self, key: str) -> None:
        plural, _, rest = key.partition("|")
        ns, name = split_key(rest)
        rollout = ROLLOUTS[plural]
        res = rollout.resource
        obj = self.workloads[plural].get(ns, name)
        if obj is None or not _service_key(obj):
            self._converged.pop(key, None)
            return
        status = UpdateStatus.of(obj)
        current = revision(obj)
        if status is None:
            # First sight: the template it was created with is no update. Recorded once the
            # workload converged, when its own controller no longer writes it.
            if kind_of(obj).progress(obj)[2]:
                await self._write(res, obj, UpdateStatus(revision=current))
            return
        if status.revision != current:
            await self._new_template(rollout, obj, status, current)
            return
        if status.state not in IN_PROGRESS:
            return
        reason = self._failure(rollout, obj, status)
        if reason:
            await self._failed(key, rollout, obj, status, reason)
            return
        await self._maybe_complete(key, res, obj, status)

    # -- transitions -----------------------------------------------------------------------

    async def _new_template(self, rollout: Rollout, obj: Obj, status: UpdateStatus, current: str) -> None:
        res = rollout.resource
        self._converged.pop(f"{res.plural}|{obj['metadata'].get('namespace')}/{obj['metadata']['name']}", None)
        if status.state == ROLLBACK_STARTED and not status.revision:
            status.revision = current  # the rollback's template, written with the status
            await self._write(res, obj, status)
            return
        if status.state in (PAUSED, ROLLBACK_PAUSED):
            m = obj["metadata"]
            await self.client.patch(res, m["name"], rollout.resume_patch(status), m.get("namespace"))
        new = UpdateStatus(state=UPDATING, revision=current, started_at=rfc3339_now(), message="update in progress",
                           generation=generation(obj))
        await self._write(res, obj, new)
        self.recorder.event(obj, "Normal", "UpdateStarted", f"update of service {obj['metadata']['name']} started")

    def _failure(self, rollout: Rollout, obj: Obj, status: UpdateStatus) -> str:
        """Why the update counts as failed ("" while it does not): tasks of the current
        template that failed, over max_failure_ratio of the service's tasks, or a rollout
        past its progress deadline since this update began."""
        progressing = condition(obj, "Progressing") or {}
        when, began = parse_time(progressing.get("lastUpdateTime")), parse_time(status.started_at)
        if progressing.get("reason") == "ProgressDeadlineExceeded" and when and began and when >= began:
            return f"no progress within the deadline ({progressing.get('message') or ''})".strip()
        is_current = rollout.current(obj)
        failures = sorted(reason for pod in self.pods.by_index(POD_INDEX, _service_key(obj)[0])
                          if (reason := task_failure(pod)) and is_current(pod))
        _, want, _ = kind_of(obj).progress(obj)
        if failures and len(failures) / max(want, 1) > max_failure_ratio(obj):
            return failures[0]
        return ""

    async def _failed(self, key: str, rollout: Rollout, obj: Obj, status: UpdateStatus, reason: str) -> None:
        self._converged.pop(key, None)
        res = rollout.resource
        name = obj["metadata"]["name"]
        if status.state == ROLLBACK_STARTED:
            await self._pause(rollout, obj, status, ROLLBACK_PAUSED, f"rollback paused due to failure of {reason}")
            self.recorder.event(obj, "Warning", "RollbackPaused", f"rollback of service {name} paused: {reason}")
            return
        action = failure_action(obj)
        if action == "continue":
            message = f"update continues despite failure of {reason}"
            if status.message != message:
                status.message = message
                await self._write(res, obj, status)
                self.recorder.event(obj, "Warning", "UpdateFailureIgnored", f"service {name}: {message}")
            return
        if action == "rollback":
            try:
                template = await previous_template_of(self.client, obj)
            except NoPrevious as e:
                reason = f"{reason}; cannot roll back: {e}"
            else:
                live = dict(obj, spec=dict(obj["spec"], template=template))
                live["metadata"] = dict(obj["metadata"], annotations=dict(obj["metadata"].get("annotations") or {}))
                mark_rollback(live, f"update rolled back due to failure or early termination of {reason}")
                await self.client.update(res, live)
                self.recorder.event(obj, "Warning", "UpdateRolledBack",
                                    f"update of service {name} failed ({reason}): rolling back")
                return
        await self._pause(rollout, obj, status, PAUSED,
                          f"update paused due to failure or early termination of {reason}")
        self.recorder.event(obj, "Warning", "UpdatePaused", f"update of service {name} paused: {reason}")

    async def _pause(self, rollout: Rollout, obj: Obj, status: UpdateStatus, state: str, message: str) -> None:
        """Stop the rollout where it is, and say why, in one write (conditional on ``obj``'s
        version, so the generation the status names is the one paused)."""
        status = UpdateStatus(state=state, revision=status.revision, started_at=status.started_at,
                              completed_at=rfc3339_now(), message=message, saved_strategy=status.saved_strategy,
                              generation=generation(obj))
        live = dict(obj, spec=dict(obj["spec"]))
        rollout.pause(live["spec"], status)
        live["metadata"] = dict(obj["metadata"], annotations={**(obj["metadata"].get("annotations") or {}),
                                                              ANNOTATION: status.dump()})
        await self.client.update(rollout.resource, live)

    async def _maybe_complete(self, key: str, res: Resource, obj: Obj, status: UpdateStatus) -> None:
        _, _, converged = kind_of(obj).progress(obj)
        if not converged:
            self._converged.pop(key, None)
            return
        since = self._converged.setdefault(key, time.monotonic())
        left = monitor(obj) - (time.monotonic() - since)
        if left > 0:
            self.queue.add_after(key, left)
            return
        self._converged.pop(key, None)
        done = ROLLBACK_COMPLETED if status.state == ROLLBACK_STARTED else COMPLETED
        status.state, status.completed_at = done, rfc3339_now()
        status.message = "rollback completed" if done == ROLLBACK_COMPLETED else "update completed"
        status.saved_strategy = ""
        await self._write(res, obj, status)
        self.recorder.event(obj, "Normal", "UpdateCompleted" if done == COMPLETED else "RollbackCompleted",
                            f"service {obj['metadata']['name']}: {status.message}")

    async def _write(self, res: Resource, obj: Obj, status: UpdateStatus) -> None:
        m = obj["metadata"]
        try:
            await self.client.patch(res, m["name"], {"metadata": {"annotations": {ANNOTATION: status.dump()}}},
                                    m.get("namespace"))
        except ApiError as e:
            if e.status != 404:
                raise


async def run(ctx: ComponentContext) -> None:
    await UpdateMonitor(ctx).run()
