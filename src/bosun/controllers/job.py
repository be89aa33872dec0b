"""The Job controller: runs pods until enough of them succeed, or gives up.

It follows Kubernetes' Job controller (batch/v1, as of v1.32): completions and parallelism
(no completions = a work queue, done when one pod succeeded and none is left running),
Indexed mode, back-off between failed attempts, backoffLimit, activeDeadlineSeconds,
suspend, and ``ttlSecondsAfterFinished`` (Kubernetes' separate TTL-after-finished
controller, folded in here because it watches the same Jobs). A Job reaching its end first
gets the interim condition (SuccessCriteriaMet / FailureTarget), then, once none of its pods
is still running, the terminal one (Complete / Failed): what clients of v1.32 expect.

Status counts are kept in the Job's status and only grow, so that pods deleted later
(by hand or by a garbage collector) do not make the Job run again.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers import _common
from bosun.controllers._common import (
    PODS,
    Controller,
    index_by_controller_uid,
    is_pod_ready,
    is_terminating,
    key_of,
    owner_key,
    parse_time,
    resource,
    rfc3339,
)
from bosun.controllers.job_pods import (
    backoff_remaining,
    deletion_order,
    format_indexes,
    is_active,
    is_terminating_active,
    parse_indexes,
    phase,
    pod_for_job,
    pod_index,
    restarts,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]

JOBS = resource("batch", "v1", "jobs")
# Kubernetes waits 10 s after a pod's failure, doubling per further failure, up to 6 min.
# Tests (and impatient clusters) lower these through the environment or by assignment.
BACKOFF_BASE = float(os.environ.get("BOSUN_JOB_BACKOFF_SECONDS", "10"))
BACKOFF_MAX = float(os.environ.get("BOSUN_JOB_BACKOFF_MAX_SECONDS", "360"))
# How long to trust our own creates/deletes to show up in the informer before acting anew.
EXPECTATION_TIMEOUT = 30.0
MAX_BURST = 500

BACKOFF_MSG = "Job has reached the specified backoff limit"
DEADLINE_MSG = "Job was active longer than specified deadline"


def now() -> datetime:
    return _common.now()


def cond_true(status: Obj, type_: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def is_finished(job: Obj) -> bool:
    status = job.get("status") or {}
    return cond_true(status, "Complete") is not None or cond_true(status, "Failed") is not None


def set_job_condition(status: Obj, type_: str, value: str, reason: str, message: str, at: datetime) -> bool:
    """A JobCondition (lastProbeTime + lastTransitionTime); whether anything changed."""
    stamp = rfc3339(at)
    conds = list(status.get("conditions") or [])
    for i, c in enumerate(conds):
        if c.get("type") != type_:
            continue
        if c.get("status") == value and c.get("reason") == reason and c.get("message") == message:
            return False
        new = dict(c, status=value, reason=reason, message=message, lastProbeTime=stamp)
        if c.get("status") != value:
            new["lastTransitionTime"] = stamp
        conds[i] = new
        status["conditions"] = conds
        return True
    if value != "True" and type_ == "Suspended":
        return False
    conds.append({"type": type_, "status": value, "lastProbeTime": stamp, "lastTransitionTime": stamp,
                  "reason": reason, "message": message})
    status["conditions"] = conds
    return True


@dataclass
class _Expectation:
    """Pods we created or deleted that the informer has not shown yet."""

    adds: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    deadline: float = 0.0


class JobController(Controller):
    name = "job"
    workers = 4

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.jobs = ctx.informers.get(JOBS)
        self.pods = ctx.informers.get(PODS)
        index_by_controller_uid(self.pods)
        self._expect: dict[str, _Expectation] = {}
        # The resourceVersion of our last status write per Job: a cached Job older than
        # that is stale, and acting on it would only end in a conflict.
        self._written: dict[str, int] = {}
        self.jobs.add_handler(self.enqueue, lambda _old, new: self.enqueue(new), self._job_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- event handlers ---------------------------------------------------------------------

    def _pod_added(self, pod: Obj) -> None:
        key = owner_key(pod, "Job")
        if key is not None:
            exp = self._expect.get(key)
            if exp is not None:
                exp.adds.discard(pod["metadata"]["name"])
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = owner_key(new, "Job")
        if key is None:
            return
        if is_terminating(new):
            exp = self._expect.get(key)
            if exp is not None:
                exp.deletes.discard(new["metadata"]["name"])
        if (phase(old), is_terminating(old), is_pod_ready(old), restarts(old)) != (
                phase(new), is_terminating(new), is_pod_ready(new), restarts(new)):
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = owner_key(pod, "Job")
        if key is not None:
            exp = self._expect.get(key)
            if exp is not None:
                exp.deletes.discard(pod["metadata"]["name"])
            self.queue.add(key)

    def _job_deleted(self, job: Obj) -> None:
        self._expect.pop(key_of(job), None)
        self._written.pop(key_of(job), None)

    def _pending(self, key: str) -> float:
        """Seconds until expectations expire, or 0 when nothing is outstanding."""
        exp = self._expect.get(key)
        if exp is None:
            return 0.0
        if not exp.adds and not exp.deletes:
            del self._expect[key]
            return 0.0
        left = exp.deadline - time.monotonic()
        if left <= 0:
            del self._expect[key]
            return 0.0
        return left

    def _expect_changes(self, key: str, adds: list[str], deletes: list[str]) -> None:
        if not adds and not deletes:
            return
        # The informer may already have shown some of them (its handlers run while we await).
        ns = key.split("/")[0]
        adds = [n for n in adds if self.pods.get(ns, n) is None]
        deletes = [n for n in deletes if (p := self.pods.get(ns, n)) is not None and not is_terminating(p)]
        if not adds and not deletes:
            return
        exp = self._expect.setdefault(key, _Expectation())
        exp.adds.update(adds)
        exp.deletes.update(deletes)
        exp.deadline = time.monotonic() + EXPECTATION_TIMEOUT

    # -- reconcile --------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        job = self.jobs.get_by_key(key)
        if job is None or is_terminating(job):
            self._expect.pop(key, None)
            return
        if _revision(job) < self._written.get(key, 0):
            return  # our own newer write is on its way through the informer
        if is_finished(job):
            await self._expire(job)
            return
        wait = self._pending(key)
        if wait > 0:
            self.queue.add_after(key, wait)
            return
        await self._sync(key, job)

    async def _sync(self, key: str, job: Obj) -> None:
        spec = job.get("spec") or {}
        old_status = job.get("status") or {}
        status = copy.deepcopy(old_status)
        at = now()
        pods = self.pods.by_index("controller-uid", job["metadata"]["uid"])
        active = [p for p in pods if is_active(p)]
        terminating = [p for p in pods if is_terminating_active(p)]
        indexed = spec.get("completionMode") == "Indexed"
        completions: int | None = spec.get("completions")
        completed: set[int] = set()
        if indexed and completions is not None:
            completed = parse_indexes(old_status.get("completedIndexes"), completions)
            completed |= {i for p in pods if phase(p) == "Succeeded"
                          and (i := pod_index(p)) is not None and 0 <= i < completions}
            succeeded = len(completed)
        else:
            succeeded = max(int(old_status.get("succeeded") or 0), sum(phase(p) == "Succeeded" for p in pods))
        failed = max(int(old_status.get("failed") or 0), sum(phase(p) == "Failed" for p in pods))
        suspended = bool(spec.get("suspend"))

        if not suspended and not status.get("startTime"):
            if cond_true(status, "Suspended"):
                set_job_condition(status, "Suspended", "False", "JobResumed", "Job resumed", at)
                self.recorder.event(job, "Normal", "Resumed", "Job resumed")
            status["startTime"] = rfc3339(at)

        failure = self._failure(job, status, failed, active, at)
        success = failure is None and (
            cond_true(status, "SuccessCriteriaMet") is not None
            or (succeeded >= completions if completions is not None else succeeded > 0 and not active))

        created: list[str] = []
        deleted: list[str] = []
        # Pods to delete once the status saying why is written: if that write fails,
        # nothing irreversible has happened and the next pass decides again.
        doomed: list[Obj] = []
        if failure is not None:
            reason, message = failure
            if set_job_condition(status, "FailureTarget", "True", reason, message, at):
                failed += len(active)  # killed pods count as failed, as in Kubernetes
            doomed = active
            if not active and not terminating:
                set_job_condition(status, "Failed", "True", reason, message, at)
                self.recorder.event(job, "Warning", reason, message)
        elif success:
            set_job_condition(status, "SuccessCriteriaMet", "True", "CompletionsReached",
                              "Reached expected number of succeeded pods", at)
            doomed = active
            if not active and not terminating:
                set_job_condition(status, "Complete", "True", "CompletionsReached",
                                  "Reached expected number of succeeded pods", at)
                status["completionTime"] = rfc3339(at)
                self.recorder.event(job, "Normal", "Completed", "Job completed")
        elif suspended:
            doomed = active
            if set_job_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", at):
                self.recorder.event(job, "Normal", "Suspended", "Job suspended")
            status.pop("startTime", None)
        else:
            created, deleted = await self._manage(key, job, pods, active, completed, succeeded, at)
            deadline = spec.get("activeDeadlineSeconds")
            start = parse_time(status.get("startTime"))
            if deadline is not None and start is not None:
                left = (start + timedelta(seconds=int(deadline)) - at).total_seconds()
                self.queue.add_after(key, max(left, 0.0) + 0.05)
        self._expect_changes(key, created, deleted)

        gone = set(deleted) | {p["metadata"]["name"] for p in doomed}
        live = [p for p in active if p["metadata"]["name"] not in gone]
        self._set_counts(status, len(live) + len(created), succeeded, failed,
                         sum(is_pod_ready(p) for p in live), len(terminating) + len(doomed))
        if indexed and completed:
            status["completedIndexes"] = format_indexes(completed)
        if not await self._write_status(key, job, old_status, status):
            return
        if doomed:
            self._expect_changes(key, [], await self._delete(job, doomed))
        if is_finished({"status": status}):
            await self._expire(dict(job, status=status))

    def _failure(self, job: Obj, status: Obj, failed: int, active: list[Obj],
                 at: datetime) -> tuple[str, str] | None:
        """Why the Job fails now (reason, message), or None."""
        target = cond_true(status, "FailureTarget")
        if target is not None:
            return str(target.get("reason") or "BackoffLimitExceeded"), str(target.get("message") or "")
        spec = job.get("spec") or {}
        limit = int(spec.get("backoffLimit", 6))
        if failed > limit:
            return "BackoffLimitExceeded", BACKOFF_MSG
        if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure":
            total = sum(restarts(p) for p in active if phase(p) in ("Pending", "Running"))
            if (total > 0) if limit == 0 else (total >= limit):
                return "BackoffLimitExceeded", BACKOFF_MSG
        deadline = spec.get("activeDeadlineSeconds")
        start = parse_time(status.get("startTime"))
        if deadline is not None and start is not None and not spec.get("suspend") \
                and at - start >= timedelta(seconds=int(deadline)):
            return "DeadlineExceeded", DEADLINE_MSG
        return None

    @staticmethod
    def _set_counts(status: Obj, active: int, succeeded: int, failed: int, ready: int, terminating: int) -> None:
        for name, value in (("active", active), ("succeeded", succeeded), ("failed", failed)):
            if value:
                status[name] = value
            else:
                status.pop(name, None)  # omitempty, as Kubernetes serializes these
        status["ready"] = ready
        status["terminating"] = terminating

    async def _manage(self, key: str, job: Obj, pods: list[Obj], active: list[Obj], completed: set[int],
                      succeeded: int, at: datetime) -> tuple[list[str], list[str]]:
        """Create or delete pods so that the right number runs; returns (created, deleted)."""
        spec = job.get("spec") or {}
        parallelism = int(spec.get("parallelism", 1))
        completions: int | None = spec.get("completions")
        if completions is None:
            want = parallelism if succeeded == 0 else len(active)
        else:
            want = max(0, min(parallelism, completions - succeeded))
        surplus: list[Obj] = []
        keep = active
        if spec.get("completionMode") == "Indexed" and completions is not None:
            keep, surplus = _split_indexed(active, completed, completions)
        excess = len(keep) - want
        if excess > 0:
            ranked = sorted(keep, key=lambda p: (-(pod_index(p) or 0), *deletion_order(p)))
            surplus += ranked[:excess]
        deleted = await self._delete(job, surplus)
        missing = want - len(keep)
        if missing <= 0:
            return [], deleted
        wait = backoff_remaining(pods, at, BACKOFF_BASE, BACKOFF_MAX)
        if wait > 0:
            self.queue.add_after(key, wait)
            return [], deleted
        indexes: list[int | None]
        if spec.get("completionMode") == "Indexed" and completions is not None:
            taken = completed | {i for p in keep if (i := pod_index(p)) is not None}
            indexes = [i for i in range(completions) if i not in taken]
        else:
            indexes = [None] * missing
        return await self._create(key, job, indexes[:missing]), deleted

    async def _create(self, key: str, job: Obj, indexes: list[int | None]) -> list[str]:
        """Create pods in doubling batches (Kubernetes' slow start): a template the API
        refuses costs one request, not hundreds."""
        ns = job["metadata"].get("namespace")
        created: list[str] = []
        batch, pos = 1, 0
        indexes = indexes[:MAX_BURST]
        while pos < len(indexes):
            chunk = indexes[pos:pos + batch]
            pos += len(chunk)
            results = await asyncio.gather(*(self.client.create(PODS, pod_for_job(job, i), ns) for i in chunk),
                                           return_exceptions=True)
            errors: list[BaseException] = []
            for r in results:
                if isinstance(r, BaseException):
                    errors.append(r)
                else:
                    name = r["metadata"]["name"]
                    created.append(name)
                    self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {name}")
            if errors:
                self._expect_changes(key, created, [])
                self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {errors[0]}")
                raise errors[0]
            batch *= 2
        return created

    async def _delete(self, job: Obj, pods: list[Obj]) -> list[str]:
        async def one(pod: Obj) -> str | None:
            name = pod["metadata"]["name"]
            try:
                await self.client.delete(PODS, name, pod["metadata"].get("namespace"),
                                         preconditions={"uid": pod["metadata"]["uid"]})
            except ApiError as exc:
                if exc.status in (404, 409):
                    return None
                self.recorder.event(job, "Warning", "FailedDelete", f"Error deleting: {exc}")
                raise
            self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
            return name

        names = await asyncio.gather(*(one(p) for p in pods))
        return [n for n in names if n is not None]

    async def _write_status(self, key: str, job: Obj, old: Obj, new: Obj) -> bool:
        """Write the status if it changed; False when the Job moved on meanwhile."""
        if new == old:
            return True
        try:
            written = await self.client.update(JOBS, dict(job, status=new), subresource="status")
        except ApiError as exc:
            if exc.status == 409:
                self.queue.add_rate_limited(key)  # a newer Job is on its way through the informer
                return False
            if exc.status == 404:
                return False
            raise
        self._written[key] = _revision(written)
        return True

    async def _expire(self, job: Obj) -> None:
        """ttlSecondsAfterFinished: delete the finished Job (and, in the background, its pods)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        status = job.get("status") or {}
        done = cond_true(status, "Complete") or cond_true(status, "Failed") or {}
        finished = parse_time(status.get("completionTime")) or parse_time(done.get("lastTransitionTime"))
        if finished is None:
            return
        left = (finished + timedelta(seconds=int(ttl)) - now()).total_seconds()
        if left > 0:
            self.queue.add_after(key_of(job), left + 0.05)
            return
        m = job["metadata"]
        try:
            await self.client.delete(JOBS, m["name"], m.get("namespace"), propagation_policy="Background",
                                     preconditions={"uid": m["uid"]})
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise


def _revision(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _split_indexed(active: list[Obj], completed: set[int], completions: int) -> tuple[list[Obj], list[Obj]]:
    """Active pods of an Indexed Job: one to keep per open index, and the rest (bad index,
    index already completed, or a duplicate) to delete."""
    keep: dict[int, Obj] = {}
    drop: list[Obj] = []
    for pod in sorted(active, key=lambda p: (not is_pod_ready(p), str(p["metadata"].get("creationTimestamp")))):
        i = pod_index(pod)
        if i is None or not 0 <= i < completions or i in completed or i in keep:
            drop.append(pod)
        else:
            keep[i] = pod
    return list(keep.values()), drop


async def run(ctx: ComponentContext) -> None:
    await JobController(ctx).run()
