"""The CronJob controller: creates a Job at each scheduled time, as Kubernetes' CronJob
controller (v2) does.

Each CronJob is reconciled when it or one of its Jobs changes, and again at its next
scheduled time (a delayed work-queue add, never a polling loop). Kubernetes' rules hold:
the next run is looked for after ``status.lastScheduleTime`` (or the CronJob's creation),
so after downtime at most one missed run is started, with a TooManyMissedTimes warning when
more than 100 were missed; ``startingDeadlineSeconds`` bounds how late a run may start; a
Job is named ``<cronjob>-<minutes since the epoch>`` so a run can never be created twice.

The controller's clock is :data:`clock`: tests swap in a faster one to see minutes pass in
seconds without touching the schedule semantics.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import (
    Controller,
    controller_ref,
    index_by_controller_uid,
    is_terminating,
    owner_ref,
    parse_time,
    resource,
    rfc3339,
)
from bosun.controllers.cron_schedule import (
    MAX_MISSED,
    Schedule,
    ScheduleError,
    earliest_time,
    job_name,
    scheduled_timestamp,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]

JOBS = resource("batch", "v1", "jobs")
CRONJOBS = resource("batch", "v1", "cronjobs")
SCHEDULED_KEY = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# Wake up a little after a scheduled time so that "now" is surely past it.
WAKE_SLACK = 0.1


class Clock:
    """Wall-clock time as the controller sees it."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def real_seconds(self, clock_seconds: float) -> float:
        """How long to really wait for ``clock_seconds`` of this clock to pass."""
        return clock_seconds


clock = Clock()


def finished_condition(job: Obj) -> str | None:
    """"Complete" or "Failed" once the Job is over, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def job_ref(job: Obj) -> Obj:
    m = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": m["name"], "namespace": m.get("namespace"),
            "uid": m["uid"], "resourceVersion": m.get("resourceVersion", "")}


class CronJobController(Controller):
    name = "cronjob"
    workers = 2

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.cronjobs = ctx.informers.get(CRONJOBS)
        self.jobs = ctx.informers.get(JOBS)
        index_by_controller_uid(self.jobs)
        self.cronjobs.add_handler(self.enqueue, lambda _old, new: self.enqueue(new))
        self.jobs.add_handler(self._job_changed, lambda _old, new: self._job_changed(new), self._job_changed)

    def _job_changed(self, job: Obj) -> None:
        self.enqueue_owner(job, "CronJob")

    async def reconcile(self, key: str) -> None:
        cj = self.cronjobs.get_by_key(key)
        if cj is None:
            return
        old_status = cj.get("status") or {}
        status = copy.deepcopy(old_status)
        jobs = self.jobs.by_index("controller-uid", cj["metadata"]["uid"])
        await self._track_jobs(cj, status, jobs)
        if is_terminating(cj):
            await self._write_status(key, cj, old_status, status)
            return
        await self._cleanup(cj, jobs)
        if not (cj.get("spec") or {}).get("suspend"):
            await self._schedule(key, cj, status)
        await self._write_status(key, cj, old_status, status)

    # -- keeping status.active true ---------------------------------------------------------

    async def _track_jobs(self, cj: Obj, status: Obj, jobs: list[Obj]) -> None:
        """Drop finished and vanished Jobs from ``active``, add running ones it lacks, and
        move ``lastSuccessfulTime`` forward."""
        active: list[Obj] = list(status.get("active") or [])
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        for job in jobs:
            uid = job["metadata"]["uid"]
            listed = any(r.get("uid") == uid for r in active)
            cond = finished_condition(job)
            if cond is None:
                if not listed and not is_terminating(job):
                    active.append(job_ref(job))
                continue
            if listed:
                active = [r for r in active if r.get("uid") != uid]
                self.recorder.event(cj, "Normal", "SawCompletedJob",
                                    f"Saw completed job: {job['metadata']['name']}, condition: {cond}")
            if cond == "Complete":
                done = parse_time((job.get("status") or {}).get("completionTime"))
                last = parse_time(status.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    status["lastSuccessfulTime"] = rfc3339(done)
        kept: list[Obj] = []
        for ref in active:
            if ref.get("uid") in by_uid:
                kept.append(ref)
                continue
            # Not in the cache: ask the API before calling it gone (the cache may lag).
            try:
                live = await self.client.get(JOBS, str(ref.get("name")), cj["metadata"].get("namespace"))
            except ApiError as exc:
                if exc.status != 404:
                    raise
                live = None
            if live is not None and live["metadata"].get("uid") == ref.get("uid"):
                kept.append(ref)
            else:
                self.recorder.event(cj, "Warning", "MissingJob", f"Active job went missing: {ref.get('name')}")
        if kept:
            status["active"] = kept
        else:
            status.pop("active", None)

    # -- history limits ---------------------------------------------------------------------

    async def _cleanup(self, cj: Obj, jobs: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        for cond, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                            ("Failed", spec.get("failedJobsHistoryLimit"))):
            if limit is None:
                continue
            done = [j for j in jobs if finished_condition(j) == cond and not is_terminating(j)]
            if len(done) <= int(limit):
                continue
            done.sort(key=_start_order)
            for job in done[:len(done) - int(limit)]:
                await self._delete_job(cj, job)

    async def _delete_job(self, cj: Obj, job: Obj) -> None:
        m = job["metadata"]
        try:
            await self.client.delete(JOBS, m["name"], m.get("namespace"), propagation_policy="Background",
                                     preconditions={"uid": m["uid"]})
        except ApiError as exc:
            if exc.status in (404, 409):
                return
            self.recorder.event(cj, "Warning", "FailedDelete", f"Deleted job: {exc}")
            raise
        self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {m['name']}")

    # -- scheduling -------------------------------------------------------------------------

    async def _schedule(self, key: str, cj: Obj, status: Obj) -> None:
        spec = cj.get("spec") or {}
        try:
            sched = Schedule(str(spec.get("schedule") or ""), spec.get("timeZone"))
        except ScheduleError as exc:
            self.recorder.event(cj, "Warning", "UnparseableSchedule", str(exc))
            return
        now = clock.now()
        created = parse_time(cj["metadata"].get("creationTimestamp")) or now
        deadline = spec.get("startingDeadlineSeconds")
        earliest = earliest_time(created, parse_time(status.get("lastScheduleTime")), now,
                                 int(deadline) if deadline is not None else None)
        missed = sched.missed(earliest, now)
        self._requeue(key, sched, now)
        scheduled = missed.most_recent
        if scheduled is None:
            return
        if missed.count > MAX_MISSED:
            self.recorder.event(cj, "Warning", "TooManyMissedTimes",
                                f"too many missed start times: {missed.count - 1}+. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")
        if deadline is not None and (now - scheduled).total_seconds() > int(deadline):
            self.recorder.event(cj, "Warning", "MissSchedule",
                                f"Missed scheduled time to start a job: {rfc3339(scheduled)}")
            return
        name = job_name(cj["metadata"]["name"], scheduled)
        active = list(status.get("active") or [])
        if any(r.get("name") == name for r in active):
            status["lastScheduleTime"] = rfc3339(scheduled)  # created earlier; its status write was lost
            return
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.recorder.event(cj, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and concurrency "
                                "policy is Forbid")
            return
        if policy == "Replace":
            for ref in active:
                job = self.jobs.get(ref.get("namespace") or cj["metadata"].get("namespace"), str(ref.get("name")))
                if job is not None:
                    await self._delete_job(cj, job)
            active = []
        job = await self._create_job(cj, name, scheduled, sched)
        if job is not None and finished_condition(job) is None \
                and not any(r.get("uid") == job["metadata"]["uid"] for r in active):
            active.append(job_ref(job))
        status["active"] = active
        if not active:
            status.pop("active")
        status["lastScheduleTime"] = rfc3339(scheduled)

    def _requeue(self, key: str, sched: Schedule, now: datetime) -> None:
        nxt = sched.next_after(now)
        self.queue.add_after(key, clock.real_seconds((nxt - now).total_seconds()) + WAKE_SLACK)

    async def _create_job(self, cj: Obj, name: str, scheduled: datetime, sched: Schedule) -> Obj | None:
        template = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        ns = cj["metadata"].get("namespace")
        body: Obj = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": name, "namespace": ns,
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": {**(tmeta.get("annotations") or {}),
                                SCHEDULED_KEY: scheduled_timestamp(scheduled, sched.tz)},
                "ownerReferences": [owner_ref(cj)],
            },
            "spec": template.get("spec") or {},
        }
        try:
            job = await self.client.create(JOBS, body, ns)
        except ApiError as exc:
            if exc.status == 409:
                existing = self.jobs.get(ns, name)
                if existing is None:
                    try:
                        existing = await self.client.get(JOBS, name, ns)
                    except ApiError:
                        return None
                ref = controller_ref(existing)
                return existing if ref is not None and ref.get("uid") == cj["metadata"]["uid"] else None
            self.recorder.event(cj, "Warning", "FailedCreate", f"Error creating job: {exc}")
            raise
        self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        return job

    async def _write_status(self, key: str, cj: Obj, old: Obj, new: Obj) -> None:
        if new == old:
            return
        try:
            await self.client.update(CRONJOBS, dict(cj, status=new), subresource="status")
        except ApiError as exc:
            if exc.status == 409:
                self.queue.add_rate_limited(key)
                return
            if exc.status == 404:
                return
            raise


def _start_order(job: Obj) -> str:
    status = job.get("status") or {}
    return str(status.get("startTime") or job["metadata"].get("creationTimestamp") or "")


async def run(ctx: ComponentContext) -> None:
    await CronJobController(ctx).run()
