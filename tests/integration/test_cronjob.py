"""CronJob controller against a real control plane (job + cronjob controllers, no scheduler).

Minutes are too slow for tests: the controller's clock is swapped for one that runs 60
times faster (a scheduled minute passes each real second) or that jumps ahead (downtime).
The test plays the node agent, finishing pods through pods/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.conftest import RunningServer, served
from tests.integration.helpers import BackgroundLoop, client_in, eventually, stamp

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers import cronjob as cronjob_controller
from bosun.controllers import job as job_controller
from bosun.controllers._common import resource

Obj = dict[str, Any]
KUBECTL = "/usr/bin/kubectl"
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


PODS = resource("", "v1", "pods")
EVENTS = resource("", "v1", "events")
NAMESPACES = resource("", "v1", "namespaces")
JOBS = resource("batch", "v1", "jobs")
CRONJOBS = resource("batch", "v1", "cronjobs")


class FastClock(cronjob_controller.Clock):
    """Wall time sped up ``speed`` times, plus jumps."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self.origin = datetime.now(UTC)
        self.real_origin = time.monotonic()
        self.offset = timedelta()

    def now(self) -> datetime:
        return self.origin + self.offset + timedelta(seconds=(time.monotonic() - self.real_origin) * self.speed)

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / self.speed


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("cronjob"),
                           options=ControlPlaneOptions(controllers=["job", "cronjob"], scheduler=False,
                                                       lease_duration=6.0))


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_controller, "BACKOFF_BASE", 0.1)


@pytest.fixture
def fast_clock(monkeypatch: pytest.MonkeyPatch) -> FastClock:
    c = FastClock(speed=60.0)
    monkeypatch.setattr(cronjob_controller, "clock", c)
    return c


@pytest.fixture
async def client(plane: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(plane, namespace) as c:
        try:
            yield c
        finally:  # stop the schedules so they do not keep the shared control plane busy
            for cj in (await c.list(CRONJOBS, namespace))["items"]:
                with contextlib.suppress(ApiError):
                    await c.delete(CRONJOBS, cj["metadata"]["name"], namespace)


def cronjob(name: str, schedule: str = "* * * * *", **spec: Any) -> Obj:
    restart = spec.pop("restartPolicy", "Never")
    job_spec = {"backoffLimit": spec.pop("backoffLimit", 0), "template": {"spec": {
        "restartPolicy": restart, "containers": [{"name": "work", "image": "busybox"}]}}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, **spec,
                     "jobTemplate": {"metadata": {"labels": {"app": name}}, "spec": job_spec}}}


class Agent(BackgroundLoop):
    """Finishes pods as ``outcome(pod)`` says ("Succeeded", "Failed", or None: keep running)."""

    def __init__(self, c: Client, ns: str, outcome: Callable[[Obj], str | None]) -> None:
        self.c, self.ns, self.outcome = c, ns, outcome

    async def _loop(self) -> None:
        while True:
            for p in (await self.c.list(PODS, self.ns))["items"]:
                phase = (p.get("status") or {}).get("phase")
                result = self.outcome(p)
                if phase in ("Succeeded", "Failed") or result is None or p["metadata"].get("deletionTimestamp"):
                    continue
                with contextlib.suppress(ApiError):
                    await self.c.patch(PODS, p["metadata"]["name"], {"status": {"phase": result, "conditions": [
                        {"type": "Ready", "status": "False", "lastTransitionTime": stamp()}]}},
                        self.ns, subresource="status")
            await asyncio.sleep(0.05)


async def jobs_of(c: Client, ns: str) -> list[Obj]:
    return list((await c.list(JOBS, ns))["items"])


def job_done(job: Obj) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


async def events(c: Client, ns: str, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in (await c.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]:
        out.setdefault(e["reason"], []).append(e["message"])
    return out


async def event_seen(c: Client, ns: str, name: str, reason: str) -> dict[str, list[str]] | None:
    ev = await events(c, ns, name)
    return ev if reason in ev else None


async def test_allow_runs_overlapping_jobs_then_sees_them_complete(
        client: Client, namespace: str, fast_clock: FastClock) -> None:
    cj = await client.create(CRONJOBS, cronjob("tick"), namespace)

    async def two_running() -> list[Obj] | None:
        jobs = await jobs_of(client, namespace)
        return jobs if len(jobs) >= 2 else None

    jobs = await eventually(two_running, 10, what="two overlapping jobs")
    for job in jobs:
        m = job["metadata"]
        scheduled = datetime.fromisoformat(m["annotations"][SCHEDULED].replace("Z", "+00:00"))
        assert scheduled.second == 0 and m["name"] == f"tick-{int(scheduled.timestamp()) // 60}"
        assert m["ownerReferences"][0]["uid"] == cj["metadata"]["uid"] and m["labels"]["app"] == "tick"

    async def listed() -> Obj | None:
        st = (await client.get(CRONJOBS, "tick", namespace)).get("status") or {}
        return st if len(st.get("active") or []) >= 2 and st.get("lastScheduleTime") else None

    await eventually(listed, 10, what="active jobs in status")
    await client.patch(CRONJOBS, "tick", {"spec": {"suspend": True}}, namespace)
    async with Agent(client, namespace, lambda p: "Succeeded"):
        async def all_seen() -> Obj | None:
            cur = await client.get(CRONJOBS, "tick", namespace)
            st = cur.get("status") or {}
            return cur if not st.get("active") and st.get("lastSuccessfulTime") else None
        await eventually(all_seen, 10, what="active emptied")
    ev = await eventually(lambda: event_seen(client, namespace, "tick", "SawCompletedJob"), 10, what="events")
    assert ev["SuccessfulCreate"][0].startswith("Created job tick-")
    assert any(m.endswith("condition: Complete") for m in ev["SawCompletedJob"])


async def test_forbid_skips_runs_while_one_is_active(client: Client, namespace: str, fast_clock: FastClock) -> None:
    await client.create(CRONJOBS, cronjob("solo", concurrencyPolicy="Forbid"), namespace)
    first = (await eventually(lambda: jobs_of(client, namespace), 10, what="first job"))[0]
    await eventually(lambda: event_seen(client, namespace, "solo", "JobAlreadyActive"), 10, what="skip event")
    assert [j["metadata"]["name"] for j in await jobs_of(client, namespace)] == [first["metadata"]["name"]]
    async with Agent(client, namespace, lambda p: "Succeeded"):
        async def second() -> list[Obj] | None:
            jobs = await jobs_of(client, namespace)
            return jobs if len(jobs) >= 2 else None
        await eventually(second, 10, what="a run after the first finished")
    await client.patch(CRONJOBS, "solo", {"spec": {"suspend": True}}, namespace)


async def test_replace_deletes_the_running_job(client: Client, namespace: str, fast_clock: FastClock) -> None:
    await client.create(CRONJOBS, cronjob("swap", concurrencyPolicy="Replace"), namespace)
    first = (await eventually(lambda: jobs_of(client, namespace), 10, what="first job"))[0]["metadata"]["name"]

    async def replaced() -> list[Obj] | None:
        jobs = [j for j in await jobs_of(client, namespace) if not j["metadata"].get("deletionTimestamp")]
        names = [j["metadata"]["name"] for j in jobs]
        return jobs if names and first not in names else None

    await eventually(replaced, 10, what="first job replaced")
    ev = await eventually(lambda: event_seen(client, namespace, "swap", "SuccessfulDelete"), 10, what="delete event")
    assert f"Deleted job {first}" in ev["SuccessfulDelete"]
    status = (await client.get(CRONJOBS, "swap", namespace))["status"]
    assert len(status["active"]) == 1


async def test_deleted_active_job_is_reported_missing(client: Client, namespace: str,
                                                      fast_clock: FastClock) -> None:
    await client.create(CRONJOBS, cronjob("lost"), namespace)
    job = (await eventually(lambda: jobs_of(client, namespace), 10, what="a job"))[0]
    await client.patch(CRONJOBS, "lost", {"spec": {"suspend": True}}, namespace)

    async def listed() -> bool:
        st = (await client.get(CRONJOBS, "lost", namespace)).get("status") or {}
        return any(r["name"] == job["metadata"]["name"] for r in st.get("active") or [])

    await eventually(listed, 10, what="job in status.active")
    for j in await jobs_of(client, namespace):
        await client.delete(JOBS, j["metadata"]["name"], namespace, propagation_policy="Background")

    async def emptied() -> bool:
        st = (await client.get(CRONJOBS, "lost", namespace)).get("status") or {}
        return not st.get("active")

    await eventually(emptied, 10, what="active emptied")
    ev = await eventually(lambda: event_seen(client, namespace, "lost", "MissingJob"), 10, what="MissingJob")
    assert f"Active job went missing: {job['metadata']['name']}" in ev["MissingJob"]


async def test_history_limits_keep_only_the_newest_finished_jobs(
        client: Client, namespace: str, fast_clock: FastClock) -> None:
    await client.create(CRONJOBS, cronjob("good", successfulJobsHistoryLimit=2), namespace)
    await client.create(CRONJOBS, cronjob("bad", failedJobsHistoryLimit=1), namespace)
    created: dict[str, set[str]] = {"good": set(), "bad": set()}

    def outcome(pod: Obj) -> str:
        return "Succeeded" if pod["metadata"]["labels"]["job-name"].startswith("good-") else "Failed"

    async with Agent(client, namespace, outcome):
        async def enough() -> bool:
            for j in await jobs_of(client, namespace):
                created[j["metadata"]["labels"]["app"]].add(j["metadata"]["name"])
            return len(created["good"]) >= 4 and len(created["bad"]) >= 3
        await eventually(enough, 15, what="several runs of each")
        for name in ("good", "bad"):
            await client.patch(CRONJOBS, name, {"spec": {"suspend": True}}, namespace)

        async def trimmed() -> bool:
            jobs = [j for j in await jobs_of(client, namespace) if not j["metadata"].get("deletionTimestamp")]
            good = [j for j in jobs if j["metadata"]["labels"]["app"] == "good"]
            bad = [j for j in jobs if j["metadata"]["labels"]["app"] == "bad"]
            return (all(job_done(j) for j in jobs) and len(good) == 2 and len(bad) == 1
                    and job_done(bad[0]) == "Failed")
        await eventually(trimmed, 10, what="history trimmed")
    survivors = {j["metadata"]["name"] for j in await jobs_of(client, namespace)}
    assert sorted(created["good"])[-2:] == sorted(survivors & created["good"])  # the newest ones stay
    ev = await events(client, namespace, "good")
    assert any(m.startswith("Deleted job good-") for m in ev["SuccessfulDelete"])


async def test_downtime_gives_one_catch_up_run_and_a_warning(
        client: Client, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FastClock(speed=1.0)
    monkeypatch.setattr(cronjob_controller, "clock", clock)
    await client.create(CRONJOBS, cronjob("late", suspend=True), namespace)
    await client.create(CRONJOBS, cronjob("few", suspend=True), namespace)
    await asyncio.sleep(0.3)
    assert await jobs_of(client, namespace) == []
    clock.offset = timedelta(minutes=200)  # the controller was away for 200 scheduled runs
    await client.patch(CRONJOBS, "late", {"spec": {"suspend": False}}, namespace)
    job = (await eventually(lambda: jobs_of(client, namespace), 10, what="catch-up run"))[0]
    scheduled = datetime.fromisoformat(job["metadata"]["annotations"][SCHEDULED].replace("Z", "+00:00"))
    assert timedelta(0) <= clock.now() - scheduled < timedelta(minutes=1)  # the latest missed run
    ev = await eventually(lambda: event_seen(client, namespace, "late", "TooManyMissedTimes"), 10, what="warning")
    assert "too many missed start times" in ev["TooManyMissedTimes"][0]
    await asyncio.sleep(0.5)
    assert len(await jobs_of(client, namespace)) == 1
    # startingDeadlineSeconds bounds how far back to look: a few missed runs, one catch-up, no warning.
    await client.patch(CRONJOBS, "few", {"spec": {"suspend": False, "startingDeadlineSeconds": 300}}, namespace)

    async def few_job() -> list[Obj]:
        return [j for j in await jobs_of(client, namespace) if j["metadata"]["labels"]["app"] == "few"]

    await eventually(few_job, 10, what="catch-up run of few")
    await asyncio.sleep(0.3)
    assert len(await few_job()) == 1
    assert "TooManyMissedTimes" not in await events(client, namespace, "few")


async def test_starting_deadline_skips_runs_that_are_too_late(
        client: Client, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FastClock(speed=1.0)
    # Half a minute past a scheduled time: a 10 s deadline has passed, so no run.
    base = clock.now().replace(second=30, microsecond=0) + timedelta(minutes=5)
    clock.offset = base - clock.now()
    monkeypatch.setattr(cronjob_controller, "clock", clock)
    await client.create(CRONJOBS, cronjob("strict", startingDeadlineSeconds=10), namespace)
    cj = await client.create(CRONJOBS, cronjob("lenient", startingDeadlineSeconds=100), namespace)
    await eventually(lambda: jobs_of(client, namespace), 10, what="lenient run")
    await asyncio.sleep(0.3)
    jobs = await jobs_of(client, namespace)
    assert [j["metadata"]["ownerReferences"][0]["uid"] for j in jobs] == [cj["metadata"]["uid"]]


async def test_kubectl_create_job_from_cronjob(plane: RunningServer, client: Client, namespace: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cronjob_controller, "clock", FastClock(speed=1.0))
    cj = await client.create(CRONJOBS, cronjob("nightly", "0 3 * * *"), namespace)
    out = await asyncio.to_thread(subprocess.run, [
        KUBECTL, "--kubeconfig", plane.kubeconfig, "-n", namespace, "create", "job", "by-hand",
        "--from=cronjob/nightly"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "job.batch/by-hand created"
    job = await client.get(JOBS, "by-hand", namespace)
    assert job["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    async with Agent(client, namespace, lambda p: "Succeeded"):
        async def complete() -> bool:
            return job_done(await client.get(JOBS, "by-hand", namespace)) == "Complete"
        await eventually(complete, 10, what="manual job complete")
    async def seen() -> bool:
        st = (await client.get(CRONJOBS, "nightly", namespace)).get("status") or {}
        return not st.get("active") and bool(st.get("lastSuccessfulTime"))
    await eventually(seen, 10, what="cronjob saw the manual run")
