"""The update monitor's rules that need no cluster: the update status as the workload carries
it, which tasks run the current template, how each kind is paused and let go on, and the
published-ports annotation the routing mesh reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bosun.api import published
from bosun.controllers import deployment_util as du
from bosun.controllers._common import template_hash
from bosun.controllers.updatemonitor import DaemonSetRollout, DeploymentRollout
from bosun.swarm.update_status import ANNOTATION, UpdateStatus, failure_action, max_failure_ratio, monitor, revision

TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"bosun.io/service": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "a"}]}}


def workload(**annotations: str) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns", "generation": 3,
                                               "annotations": annotations},
            "spec": {"template": TEMPLATE}, "status": {"collisionCount": 0}}


def pod(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "web-1", "labels": labels}}


def test_update_status_round_trips_through_its_annotation() -> None:
    status = UpdateStatus(state="paused", revision="abc", started_at="2026-01-01T00:00:00Z", message="why")
    back = UpdateStatus.of(workload(**{ANNOTATION: status.dump()}))
    assert back == status
    assert back is not None and back.docker() == {"State": "paused", "Message": "why",
                                                  "StartedAt": "2026-01-01T00:00:00Z"}
    assert UpdateStatus.of(workload()) is None
    assert UpdateStatus.of(workload(**{ANNOTATION: "not json"})) is None
    assert UpdateStatus.of(workload(**{ANNOTATION: "[1]"})) is None


def test_a_new_template_is_a_new_revision() -> None:
    before = revision(workload())
    changed = workload()
    changed["spec"] = {"template": {**TEMPLATE, "spec": {"containers": [{"name": "web", "image": "b"}]}}}
    assert revision(changed) != before and revision(workload()) == before


def test_update_config_defaults_are_swarms() -> None:
    plain = workload()
    assert (failure_action(plain), monitor(plain), max_failure_ratio(plain)) == ("pause", 5.0, 0.0)
    cfg = workload(**{"bosun.io/update-config": json.dumps(
        {"failure_action": "rollback", "monitor": "1m30s", "max_failure_ratio": 0.25})})
    assert (failure_action(cfg), monitor(cfg), max_failure_ratio(cfg)) == ("rollback", 90.0, 0.25)
    bad = workload(**{"bosun.io/update-config": json.dumps({"monitor": "soon", "max_failure_ratio": "x"})})
    assert (monitor(bad), max_failure_ratio(bad)) == (5.0, 0.0)


def test_tasks_of_the_current_template_per_kind() -> None:
    w = workload()
    current = template_hash(du.without_hash(TEMPLATE), 0)
    assert DeploymentRollout().current(w)(pod(**{du.HASH_LABEL: current}))
    assert not DeploymentRollout().current(w)(pod(**{du.HASH_LABEL: "older"}))
    assert DaemonSetRollout().current(w)(pod(**{"pod-template-generation": "3"}))
    assert not DaemonSetRollout().current(w)(pod(**{"pod-template-generation": "2"}))


def test_pausing_and_resuming_per_kind() -> None:
    status = UpdateStatus(state="updating")
    spec: dict[str, Any] = {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}
    DaemonSetRollout().pause(spec, status)
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    assert DaemonSetRollout().resume_patch(status) == {"spec": {"updateStrategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}}
    DaemonSetRollout().pause(spec, status)  # pausing again keeps the strategy first saved
    assert json.loads(status.saved_strategy)["type"] == "RollingUpdate"
    deployment: dict[str, Any] = {}
    DeploymentRollout().pause(deployment, status)
    assert deployment == {"paused": True} and DeploymentRollout().resume_patch(status) == {"spec": {"paused": False}}


def test_published_ports_annotation() -> None:
    assert published.parse("8080:80/tcp, 53:53/udp,9000:90") == [(8080, 80, "tcp"), (53, 53, "udp"),
                                                                  (9000, 90, "tcp")]
    for bad in ("8080", "x:80", "8080:80/http", "70000:80"):
        with pytest.raises(published.BadPublished):
            published.parse(bad)
    assert published.format_ports([(8080, 80, "tcp")]) == "8080:80/tcp"
    assert published.declared({"metadata": {"annotations": {published.ANNOTATION: "8080:80/tcp"}}}) == {
        (8080, "tcp")}
