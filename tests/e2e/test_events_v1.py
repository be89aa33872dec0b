"""events.k8s.io/v1 Events are the core/v1 Events seen through other field names: one
stored object, written through either group and read through the other, with real kubectl."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import served
from tests.e2e.helpers import Kubectl

NS = "evts"
V1 = "events.v1.events.k8s.io"


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    for running in served(tmp_path_factory.mktemp("events-server")):
        k = Kubectl(running.kubeconfig, str(tmp_path_factory.mktemp("kubectl-home")))
        ok(k("create", "namespace", NS))
        yield k


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"{p.args}: {p.stdout}\n{p.stderr}"
    return p.stdout


def get(kubectl: Kubectl, resource: str, name: str) -> dict[str, Any]:
    return dict(json.loads(ok(kubectl("get", "-n", NS, resource, name, "-o", "json"))))


REGARDING = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": NS, "uid": "u-1"}
RELATED = {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": NS}


def test_created_as_events_v1_read_as_core(kubectl: Kubectl) -> None:
    new = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.new", "namespace": NS},
           "eventTime": "2024-05-01T10:00:00.123456Z", "reportingController": "example.com/watcher",
           "reportingInstance": "watcher-0", "action": "Scaling", "reason": "ScaledUp", "type": "Warning",
           "note": "scaled up to 3", "regarding": REGARDING, "related": RELATED,
           "series": {"count": 4, "lastObservedTime": "2024-05-01T10:05:00.000000Z"}}
    ok(kubectl("create", "-f", "-", stdin=json.dumps(new)))
    core = get(kubectl, "events", "web.new")
    assert core["apiVersion"] == "v1"
    assert core["message"] == "scaled up to 3" and core["involvedObject"] == REGARDING
    assert core["reportingComponent"] == "example.com/watcher" and core["reportingInstance"] == "watcher-0"
    assert core["related"] == RELATED and core["action"] == "Scaling" and core["reason"] == "ScaledUp"
    assert core["type"] == "Warning" and core["eventTime"] == "2024-05-01T10:00:00.123456Z"
    assert core["series"] == new["series"]
    assert not {"note", "regarding", "reportingController"} & set(core)
    # The same object: one uid and resourceVersion through both groups.
    again = get(kubectl, V1, "web.new")
    assert again["metadata"]["uid"] == core["metadata"]["uid"]
    assert again["metadata"]["resourceVersion"] == core["metadata"]["resourceVersion"]


def test_created_as_core_read_as_events_v1(kubectl: Kubectl) -> None:
    old = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.old", "namespace": NS},
           "involvedObject": REGARDING, "reason": "Pulled", "message": "image pulled", "type": "Normal",
           "source": {"component": "kubelet", "host": "node-1"}, "count": 3,
           "firstTimestamp": "2024-05-01T09:00:00Z", "lastTimestamp": "2024-05-01T09:30:00Z"}
    ok(kubectl("create", "-f", "-", stdin=json.dumps(old)))
    ev = get(kubectl, V1, "web.old")
    assert ev["apiVersion"] == "events.k8s.io/v1" and ev["kind"] == "Event"
    assert ev["note"] == "image pulled" and ev["regarding"] == REGARDING and ev["reason"] == "Pulled"
    assert ev["deprecatedSource"] == {"component": "kubelet", "host": "node-1"}
    assert ev["deprecatedCount"] == 3
    assert ev["deprecatedFirstTimestamp"] == "2024-05-01T09:00:00Z"
    assert ev["deprecatedLastTimestamp"] == "2024-05-01T09:30:00Z"
    assert not {"message", "involvedObject", "source", "count", "firstTimestamp"} & set(ev)
    # Written back through events.k8s.io (a label added), still the core object underneath.
    ev["metadata"]["labels"] = {"seen": "v1"}
    ok(kubectl("replace", "-f", "-", stdin=json.dumps(ev)))
    core = get(kubectl, "events", "web.old")
    assert core["metadata"]["labels"] == {"seen": "v1"} and core["source"]["host"] == "node-1"
    assert core["count"] == 3 and core["message"] == "image pulled"


def test_listed_by_kubectl_through_both_groups(kubectl: Kubectl) -> None:
    for name in ("web.listed-new", "web.listed-old"):
        kubectl("delete", "-n", NS, "events", name, "--ignore-not-found")
    ok(kubectl("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.listed-new", "namespace": NS},
        "eventTime": "2024-05-01T10:00:00.000000Z", "reportingController": "example.com/w",
        "reportingInstance": "w-0", "action": "Check", "reason": "NewStyle", "type": "Normal",
        "note": "written as events.k8s.io", "regarding": REGARDING})))
    ok(kubectl("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.listed-old", "namespace": NS},
        "involvedObject": REGARDING, "reason": "OldStyle", "message": "written as core", "type": "Normal"})))
    listed = ok(kubectl("get", V1, "-A"))
    assert "NewStyle" in listed and "OldStyle" in listed and "deployment/web" in listed
    items = json.loads(ok(kubectl("get", V1, "-n", NS, "-o", "json")))["items"]
    assert {i["apiVersion"] for i in items} == {"events.k8s.io/v1"}
    assert {"web.listed-new", "web.listed-old"} <= {i["metadata"]["name"] for i in items}
    shown = ok(kubectl("events", "-n", NS))
    assert "written as events.k8s.io" in shown and "written as core" in shown
    ok(kubectl("delete", "-n", NS, V1, "web.listed-new"))
    assert kubectl("get", "-n", NS, "events", "web.listed-new").returncode != 0


def test_events_v1_rules_are_checked_on_create(kubectl: Kubectl) -> None:
    bare = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.bare", "namespace": NS},
            "regarding": REGARDING, "note": "no reporter", "deprecatedCount": 2}
    p = kubectl("create", "-f", "-", stdin=json.dumps(bare))
    assert p.returncode != 0 and "is invalid" in p.stderr, p.stderr
    for text in ("eventTime: Required value", "reportingController: Required value", "action: Required value",
                 "reportingInstance: Required value", "count: Invalid value", "needs to be unset"):
        assert text in p.stderr, (text, p.stderr)
    # The same event is a valid core/v1 Event: the stricter rules are the new group's.
    core = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.bare", "namespace": NS},
            "involvedObject": REGARDING, "message": "no reporter", "count": 2}
    ok(kubectl("create", "-f", "-", stdin=json.dumps(core)))


def test_delete_collection_through_events_v1(kubectl: Kubectl) -> None:
    for i in range(3):
        ok(kubectl("create", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"web.gone-{i}", "namespace": NS,
                                                              "labels": {"batch": "gone" if i < 2 else "kept"}},
            "involvedObject": REGARDING, "reason": "Batch", "message": f"event {i}"})))
    out = json.loads(ok(kubectl("delete", "--raw",
                                f"/apis/events.k8s.io/v1/namespaces/{NS}/events?labelSelector=batch%3Dgone")))
    assert out["apiVersion"] == "events.k8s.io/v1"
    assert sorted(i["note"] for i in out["items"]) == ["event 0", "event 1"]
    names = ok(kubectl("get", "events", "-n", NS, "-l", "batch", "-o", "name")).split()
    assert names == ["event/web.gone-2"]


def test_server_side_apply_through_events_v1(kubectl: Kubectl) -> None:
    def applied(note: str, manager: str = "rollout-watcher", *extra: str) -> subprocess.CompletedProcess[str]:
        return kubectl("apply", "--server-side", f"--field-manager={manager}", *extra, "-f", "-",
                       stdin=json.dumps({
                           "apiVersion": "events.k8s.io/v1", "kind": "Event",
                           "metadata": {"name": "web.ssa", "namespace": NS},
                           "eventTime": "2024-05-01T10:00:00.000000Z", "reportingController": "example.com/w",
                           "reportingInstance": "w-0", "action": "Roll", "reason": "Rolled", "type": "Normal",
                           "note": note, "regarding": REGARDING}))
    ok(applied("first"))
    ok(applied("second"))
    core = json.loads(ok(kubectl("get", "-n", NS, "events", "web.ssa", "-o", "json", "--show-managed-fields")))
    assert core["message"] == "second" and core["reportingComponent"] == "example.com/w"
    assert [f["manager"] for f in core["metadata"]["managedFields"]] == ["rollout-watcher"]
    # Another manager changing the note conflicts, as on any applied field, until it forces.
    p = applied("third", "other")
    assert p.returncode != 0 and "conflict" in p.stderr.lower(), p.stderr
    ok(applied("third", "other", "--force-conflicts"))
    assert get(kubectl, V1, "web.ssa")["note"] == "third"
