"""Job controller against a real control plane (only the job controller, no scheduler).

The test plays the node agent: it reports pods Running, Succeeded or Failed through
pods/status, with container end times as a kubelet would.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer, served
from tests.integration.helpers import client_in, eventually

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.component import ControlPlaneOptions
from bosun.controllers import job as job_controller
from bosun.controllers._common import resource
from bosun.controllers.job_pods import format_indexes, parse_indexes

Obj = dict[str, Any]


PODS = resource("", "v1", "pods")
EVENTS = resource("", "v1", "events")
NAMESPACES = resource("", "v1", "namespaces")
JOBS = resource("batch", "v1", "jobs")
KUBECTL = "/usr/bin/kubectl"
INDEX = "batch.kubernetes.io/job-completion-index"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("job"),
                           options=ControlPlaneOptions(controllers=["job"], scheduler=False, lease_duration=6.0))


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_controller, "BACKOFF_BASE", 0.2)


@pytest.fixture
async def client(plane: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with client_in(plane, namespace) as c:
        yield c


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job_manifest(name: str, ns: str, **spec: Any) -> Obj:
    restart = spec.pop("restartPolicy", "Never")
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {**spec, "template": {"spec": {"restartPolicy": restart, "containers": [
                {"name": "work", "image": "busybox", "command": ["true"]}]}}}}


def kubectl_create(plane: RunningServer, manifest: Obj) -> None:
    subprocess.run([KUBECTL, "--kubeconfig", plane.kubeconfig, "create", "-f", "-"],
                   input=yaml.safe_dump(manifest), text=True, check=True, capture_output=True)


async def finish(c: Client, pod: Obj, phase: str, restarts: int = 0) -> None:
    """Report a pod finished, as the node agent would once its container exited."""
    m = pod["metadata"]
    code = 0 if phase == "Succeeded" else 1
    terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                  "startedAt": stamp(), "finishedAt": stamp()}
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": stamp()}],
              "containerStatuses": [{"name": "work", "image": "busybox", "imageID": "", "ready": False,
                                     "restartCount": restarts, "state": {"terminated": terminated}}]}
    await c.patch(PODS, m["name"], {"status": status}, m["namespace"], subresource="status")


async def active_pods(c: Client, ns: str) -> list[Obj]:
    pods = (await c.list(PODS, ns))["items"]
    return [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")]


def condition(job: Obj, type_: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_ and cond["status"] == "True":
            return dict(cond)
    return None


async def finished(c: Client, ns: str, name: str, type_: str) -> Obj:
    async def check() -> Obj | None:
        job = await c.get(JOBS, name, ns)
        return job if condition(job, type_) else None
    return await eventually(check, what=f"job {name} {type_}")  # type: ignore[no-any-return]


async def reasons(c: Client, ns: str, name: str) -> dict[str, list[str]]:
    evs = (await c.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]
    out: dict[str, list[str]] = {}
    for e in evs:
        out.setdefault(e["reason"], []).append(e["message"])
    return out


async def drive(c: Client, ns: str, outcome: Callable[[Obj], str], until: Callable[[], Awaitable[bool]],
                max_active: int | None = None, seconds: float = 20.0) -> None:
    """Finish every active pod as ``outcome(pod)`` says until ``until()``; check the
    number of active pods never exceeds ``max_active``."""
    deadline = time.monotonic() + seconds
    while not await until():
        pods = await active_pods(c, ns)
        if max_active is not None:
            assert len(pods) <= max_active, [p["metadata"]["name"] for p in pods]
        for p in pods:
            try:
                await finish(c, p, outcome(p))
            except ApiError as e:
                if e.status != 404:
                    raise
        assert time.monotonic() < deadline, "job did not finish"
        await asyncio.sleep(0.05)


def test_completed_indexes_round_trip() -> None:
    assert format_indexes({0, 2, 3, 4, 7}) == "0,2-4,7"
    assert parse_indexes("0,2-4,7", 10) == {0, 2, 3, 4, 7}
    assert parse_indexes("0,2-4,7", 4) == {0, 2, 3}
    assert format_indexes(set()) == "" and parse_indexes("", 3) == set()


async def test_completions_with_parallelism(plane: RunningServer, client: Client, namespace: str) -> None:
    kubectl_create(plane, job_manifest("pi", namespace, completions=5, parallelism=2))

    async def done() -> bool:
        return condition(await client.get(JOBS, "pi", namespace), "Complete") is not None

    await eventually(lambda: active_pods(client, namespace), what="first pods")
    await drive(client, namespace, lambda p: "Succeeded", done, max_active=2)
    job = await client.get(JOBS, "pi", namespace)
    st = job["status"]
    assert st["succeeded"] == 5 and "failed" not in st and "active" not in st
    assert st["startTime"] and st["completionTime"] and st["ready"] == 0
    assert condition(job, "SuccessCriteriaMet") is not None
    pods = (await client.list(PODS, namespace))["items"]
    assert len(pods) == 5
    uid = job["metadata"]["uid"]
    for p in pods:
        labels = p["metadata"]["labels"]
        assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "pi"
        assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == uid
        assert p["metadata"]["name"].startswith("pi-")
        assert p["metadata"]["ownerReferences"][0]["uid"] == uid
    ev = await eventually(lambda: _has(client, namespace, "pi", "Completed"), what="events")
    assert len(ev["SuccessfulCreate"]) == 5 and ev["Completed"] == ["Job completed"]
    out = await asyncio.to_thread(
        subprocess.run, [KUBECTL, "--kubeconfig", plane.kubeconfig, "-n", namespace, "wait",
                         "--for=condition=complete", "job/pi", "--timeout=5s"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


async def _has(c: Client, ns: str, name: str, reason: str) -> dict[str, list[str]] | None:
    ev = await reasons(c, ns, name)
    return ev if reason in ev else None


async def test_work_queue_without_completions(client: Client, namespace: str) -> None:
    await client.create(JOBS, job_manifest("queue", namespace, parallelism=3), namespace)
    pods = await eventually(lambda: _count_active(client, namespace, 3), what="3 workers")
    await finish(client, pods[0], "Succeeded")
    await asyncio.sleep(0.5)  # a success means the queue is drained: no new workers come
    assert len(await active_pods(client, namespace)) == 2
    assert condition(await client.get(JOBS, "queue", namespace), "Complete") is None
    for p in pods[1:]:
        await finish(client, p, "Succeeded")
    job = await finished(client, namespace, "queue", "Complete")
    assert job["status"]["succeeded"] == 3


async def _count_active(c: Client, ns: str, n: int) -> list[Obj] | None:
    pods = await active_pods(c, ns)
    return pods if len(pods) == n else None


async def test_backoff_limit_fails_job_after_spaced_retries(client: Client, namespace: str) -> None:
    await client.create(JOBS, job_manifest("flaky", namespace, backoffLimit=2), namespace)
    created: list[float] = []
    failed_at: list[float] = []

    async def failed() -> bool:
        return condition(await client.get(JOBS, "flaky", namespace), "Failed") is not None

    deadline = time.monotonic() + 20
    seen: set[str] = set()
    while not await failed():
        for p in await active_pods(client, namespace):
            if p["metadata"]["name"] not in seen:
                seen.add(p["metadata"]["name"])
                created.append(time.monotonic())
                await finish(client, p, "Failed")
                failed_at.append(time.monotonic())
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    job = await client.get(JOBS, "flaky", namespace)
    cond = condition(job, "Failed")
    assert cond is not None and cond["reason"] == "BackoffLimitExceeded"
    assert cond["message"] == "Job has reached the specified backoff limit"
    assert condition(job, "FailureTarget") is not None and "completionTime" not in job["status"]
    assert job["status"]["failed"] == 3 and len(seen) == 3
    # Back-off doubles: 0.2 s after the first failure, 0.4 s after the second.
    assert created[1] - failed_at[0] >= 0.15 and created[2] - failed_at[1] >= 0.35
    ev = await eventually(lambda: _has(client, namespace, "flaky", "BackoffLimitExceeded"), what="event")
    assert ev["BackoffLimitExceeded"] == ["Job has reached the specified backoff limit"]


async def test_restart_count_exceeds_backoff_limit_on_failure(client: Client, namespace: str) -> None:
    await client.create(JOBS, job_manifest("crashy", namespace, backoffLimit=2, restartPolicy="OnFailure"),
                        namespace)
    pods = await eventually(lambda: _count_active(client, namespace, 1), what="pod")
    m = pods[0]["metadata"]
    await client.patch(PODS, m["name"], {"status": {"phase": "Running", "containerStatuses": [
        {"name": "work", "image": "busybox", "imageID": "", "ready": False, "restartCount": 2,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}, namespace, subresource="status")
    job = await finished(client, namespace, "crashy", "Failed")
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    await eventually(lambda: _gone(client, namespace, m["name"]), what="pod deleted")


async def _gone(c: Client, ns: str, name: str) -> bool:
    try:
        await c.get(PODS, name, ns)
    except ApiError as e:
        return e.status == 404
    return False


async def test_active_deadline_fails_and_deletes_pods(client: Client, namespace: str) -> None:
    # 3 s, not 1: the test must see both pods before the deadline deletes them, on a loaded machine too.
    await client.create(JOBS, job_manifest("slow", namespace, completions=4, parallelism=2,
                                           activeDeadlineSeconds=3), namespace)
    await eventually(lambda: _count_active(client, namespace, 2), what="2 pods")
    started = time.monotonic()
    job = await finished(client, namespace, "slow", "Failed")
    assert time.monotonic() - started < 6  # startTime has whole seconds, as in Kubernetes
    cond = condition(job, "Failed")
    assert cond is not None and cond["reason"] == "DeadlineExceeded"
    assert cond["message"] == "Job was active longer than specified deadline"
    assert job["status"]["failed"] == 2 and "active" not in job["status"]
    assert (await client.list(PODS, namespace))["items"] == []
    await eventually(lambda: _has(client, namespace, "slow", "DeadlineExceeded"), what="event")


async def test_ttl_after_finished_deletes_job_and_pods(client: Client, namespace: str) -> None:
    await client.create(JOBS, job_manifest("brief", namespace, ttlSecondsAfterFinished=1), namespace)
    pods = await eventually(lambda: _count_active(client, namespace, 1), what="pod")
    await finish(client, pods[0], "Succeeded")
    await finished(client, namespace, "brief", "Complete")

    async def job_gone() -> bool:
        try:
            await client.get(JOBS, "brief", namespace)
        except ApiError as e:
            return e.status == 404
        return False

    await eventually(job_gone, what="job deleted by TTL")
    await eventually(lambda: _gone(client, namespace, pods[0]["metadata"]["name"]), what="pods collected")


async def test_indexed_job_completes_each_index_once(client: Client, namespace: str) -> None:
    await client.create(JOBS, job_manifest("idx", namespace, completions=3, parallelism=3,
                                           completionMode="Indexed"), namespace)
    pods = await eventually(lambda: _count_active(client, namespace, 3), what="3 indexed pods")
    by_index = {int(p["metadata"]["annotations"][INDEX]): p for p in pods}
    assert sorted(by_index) == [0, 1, 2]
    for i, p in by_index.items():
        assert p["metadata"]["name"].startswith(f"idx-{i}-")
        assert p["metadata"]["labels"][INDEX] == str(i)
        assert p["spec"]["hostname"] == f"idx-{i}"
        env = {e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]}
        assert env["JOB_COMPLETION_INDEX"] == str(i)
    # Index 1 fails once and is retried under the same index.
    await finish(client, by_index[1], "Failed")
    await finish(client, by_index[0], "Succeeded")

    async def retried() -> Obj | None:
        for p in await active_pods(client, namespace):
            if p["metadata"]["annotations"][INDEX] == "1":
                return p
        return None

    retry = await eventually(retried, what="index 1 retried")
    assert retry["metadata"]["name"] != by_index[1]["metadata"]["name"]
    await finish(client, retry, "Succeeded")
    await finish(client, by_index[2], "Succeeded")
    job = await finished(client, namespace, "idx", "Complete")
    assert job["status"]["completedIndexes"] == "0-2" and job["status"]["succeeded"] == 3
    assert job["status"]["failed"] == 1
    done = [p for p in (await client.list(PODS, namespace))["items"] if p["status"]["phase"] == "Succeeded"]
    assert sorted(p["metadata"]["annotations"][INDEX] for p in done) == ["0", "1", "2"]


async def test_suspend_deletes_pods_and_resume_recreates_them(client: Client, namespace: str) -> None:
    await client.create(JOBS, job_manifest("nap", namespace, completions=2, parallelism=2), namespace)
    await eventually(lambda: _count_active(client, namespace, 2), what="2 pods")
    await client.patch(JOBS, "nap", {"spec": {"suspend": True}}, namespace)

    async def suspended() -> Obj | None:
        job = await client.get(JOBS, "nap", namespace)
        pods = (await client.list(PODS, namespace))["items"]
        ok = condition(job, "Suspended") and not pods and "active" not in job["status"]
        return job if ok else None

    job = await eventually(suspended, what="suspended")
    assert condition(job, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]
    assert "startTime" not in job["status"]
    await client.patch(JOBS, "nap", {"spec": {"suspend": False}}, namespace)
    pods = await eventually(lambda: _count_active(client, namespace, 2), what="pods after resume")
    job = await client.get(JOBS, "nap", namespace)
    cond = next(c for c in job["status"]["conditions"] if c["type"] == "Suspended")
    assert cond["status"] == "False" and cond["reason"] == "JobResumed" and job["status"]["startTime"]
    for p in pods:
        await finish(client, p, "Succeeded")
    await finished(client, namespace, "nap", "Complete")
    ev = await eventually(lambda: _has(client, namespace, "nap", "Resumed"), what="events")
    assert "Suspended" in ev


async def test_job_created_suspended_runs_nothing(client: Client, namespace: str) -> None:
    await client.create(JOBS, job_manifest("later", namespace, suspend=True), namespace)
    job = await eventually(lambda: _suspended_job(client, namespace, "later"), what="Suspended condition")
    assert "startTime" not in job["status"]
    assert (await client.list(PODS, namespace))["items"] == []


async def _suspended_job(c: Client, ns: str, name: str) -> Obj | None:
    job = await c.get(JOBS, name, ns)
    return job if condition(job, "Suspended") else None
