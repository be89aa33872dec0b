"""Pod status rules alone: phase per restart policy, waiting reasons, readiness without probes."""

from __future__ import annotations

from typing import Any

from bosun.agent.podstatus import PodFacts, build_status
from bosun.agent.runtime.base import ContainerState, ContainerStatus


def _facts(policy: str, waiting: dict[str, tuple[str, str]] | None = None) -> PodFacts:
    pod: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"restartPolicy": policy, "containers": [
        {"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]}}
    return PodFacts(pod=pod, runtime="docker", node_ip="10.0.0.1", pod_ip="10.88.0.5", sandbox_ready=True,
                    start_time="2026-01-01T00:00:00Z", waiting=waiting or {}, probes={}, terminal=False, evicted="")


def _st(name: str, state: ContainerState, code: int | None = None) -> ContainerStatus:
    return ContainerStatus(id=f"id-{name}", pod_uid="u", name=name, attempt=0, state=state, exit_code=code,
                           created_at=1.0, started_at=2.0, finished_at=3.0,
                           reason="" if code is None else ("Completed" if code == 0 else "Error"))


def test_all_exited_zero_with_restart_policy_never_is_succeeded() -> None:
    latest = {n: _st(n, ContainerState.EXITED, 0) for n in ("a", "b")}
    status = build_status(_facts("Never"), latest, {}, init_ok=True)
    assert status["phase"] == "Succeeded"
    assert [c["state"]["terminated"]["reason"] for c in status["containerStatuses"]] == ["Completed", "Completed"]
    assert status["containerStatuses"][0]["containerID"] == "docker://id-a"


def test_one_failed_with_restart_policy_never_is_failed_and_not_ready() -> None:
    latest = {"a": _st("a", ContainerState.EXITED, 0), "b": _st("b", ContainerState.EXITED, 2)}
    status = build_status(_facts("Never"), latest, {}, init_ok=True)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert status["phase"] == "Failed" and ready["status"] == "False" and ready["reason"] == "PodCompleted"


def test_a_waiting_reason_is_shown_and_keeps_the_pod_unready() -> None:
    latest = {"a": _st("a", ContainerState.RUNNING)}
    facts = _facts("Always", {"b": ("ErrImagePull", 'failed to pull image "busybox"')})
    status = build_status(facts, latest, {}, init_ok=True)
    a, b = status["containerStatuses"]
    assert a["ready"] is True and "running" in a["state"]  # no readiness probe: ready once running
    assert b["state"]["waiting"] == {"reason": "ErrImagePull", "message": 'failed to pull image "busybox"'}
    assert status["phase"] == "Pending" and status["podIP"] == "10.88.0.5"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["message"] == "containers with unready status: [b]"
