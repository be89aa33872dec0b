"""flowcontrol.apiserver.k8s.io/v1 through real kubectl (v1.32): the mandatory FlowSchemas and
PriorityLevelConfigurations exist from the start, objects are defaulted and validated with
Kubernetes' messages, and a FlowSchema's Dangling condition follows its priority level.
Dispatching by them (seats, queues, 429) is tested in test_flowcontrol_dispatch.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer, served
from tests.e2e.helpers import Kubectl, wait_until

V1 = "flowcontrol.apiserver.k8s.io/v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of this module's own: these objects are cluster-wide."""
    yield from served(tmp_path_factory.mktemp("flowcontrol-server"))


@pytest.fixture
def kubectl(server: RunningServer, tmp_path: Path) -> Iterator[Kubectl]:
    k = Kubectl(server.kubeconfig, str(tmp_path))
    try:
        yield k
    finally:
        k("delete", "flowschemas,prioritylevelconfigurations", "-l", "test=flowcontrol", "--wait=false")


def level(name: str, **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": V1, "kind": "PriorityLevelConfiguration",
                           "metadata": {"name": name, "labels": {"test": "flowcontrol"}}, "spec": spec})


def schema(name: str, level_name: str, **spec: Any) -> str:
    rules = [{"subjects": [{"kind": "User", "user": {"name": "alice"}}],
              "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                                 "namespaces": ["*"]}]}]
    return yaml.safe_dump({"apiVersion": V1, "kind": "FlowSchema",
                           "metadata": {"name": name, "labels": {"test": "flowcontrol"}},
                           "spec": {"priorityLevelConfiguration": {"name": level_name}, "rules": rules, **spec}})


def get(kubectl: Kubectl, what: str) -> dict[str, Any]:
    r = kubectl("get", what, "-o", "json")
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def test_mandatory_objects_are_listed(kubectl: Kubectl) -> None:
    r = kubectl("get", "flowschemas,prioritylevelconfigurations")
    assert r.returncode == 0, r.stderr
    names = {line.split()[0] for line in r.stdout.splitlines() if line and not line.startswith("NAME")}
    assert {"flowschema.flowcontrol.apiserver.k8s.io/exempt", "flowschema.flowcontrol.apiserver.k8s.io/catch-all",
            "prioritylevelconfiguration.flowcontrol.apiserver.k8s.io/exempt",
            "prioritylevelconfiguration.flowcontrol.apiserver.k8s.io/catch-all"} <= names, r.stdout
    catch_all = get(kubectl, "flowschema/catch-all")
    assert catch_all["metadata"]["annotations"]["apf.kubernetes.io/autoupdate-spec"] == "true"
    assert catch_all["spec"]["matchingPrecedence"] == 10000
    assert catch_all["spec"]["distinguisherMethod"] == {"type": "ByUser"}
    exempt = get(kubectl, "prioritylevelconfiguration/exempt")
    assert exempt["spec"] == {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}

    def found() -> bool:
        conds = get(kubectl, "flowschema/exempt").get("status", {}).get("conditions", [])
        return any(c["type"] == "Dangling" and c["status"] == "False" for c in conds)
    wait_until(found, within=20, what="the exempt FlowSchema's Dangling=False")
    # kubectl's columns are upstream's printers'.
    rows = [line.split() for line in kubectl("get", "flowschemas").stdout.splitlines()]
    assert rows[0] == ["NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE", "MISSINGPL"]
    row = next(r for r in rows if r[0] == "catch-all")
    assert row[1:4] == ["catch-all", "10000", "ByUser"] and row[5] == "False", rows
    rows = [line.split() for line in kubectl("get", "prioritylevelconfigurations").stdout.splitlines()]
    assert rows[0] == ["NAME", "TYPE", "NOMINALCONCURRENCYSHARES", "QUEUES", "HANDSIZE", "QUEUELENGTHLIMIT", "AGE"]
    assert next(r for r in rows if r[0] == "catch-all")[1:6] == ["Limited", "5", "<none>", "<none>", "<none>"]


def test_defaults_and_dangling_condition(kubectl: Kubectl) -> None:
    made = kubectl("apply", "-f", "-", stdin=schema("orphan", "later"))
    assert made.returncode == 0, made.stderr
    got = get(kubectl, "flowschema/orphan")
    assert got["spec"]["matchingPrecedence"] == 1000

    def dangling(status: str) -> bool:
        conds = get(kubectl, "flowschema/orphan").get("status", {}).get("conditions", [])
        return any(c["type"] == "Dangling" and c["status"] == status for c in conds)
    wait_until(lambda: dangling("True"), within=20, what="Dangling=True while the level is missing")
    cond = next(c for c in get(kubectl, "flowschema/orphan")["status"]["conditions"] if c["type"] == "Dangling")
    assert cond["reason"] == "NotFound" and '"later" but there is no such object' in cond["message"]
    assert cond["lastTransitionTime"]
    made = kubectl("apply", "-f", "-", stdin=level("later", type="Limited", limited={}))
    assert made.returncode == 0, made.stderr
    limited = get(kubectl, "prioritylevelconfiguration/later")["spec"]["limited"]
    assert limited == {"nominalConcurrencyShares": 30, "lendablePercent": 0,
                       "limitResponse": {"type": "Queue",
                                         "queuing": {"queues": 64, "handSize": 8, "queueLengthLimit": 50}}}
    wait_until(lambda: dangling("False"), within=20, what="Dangling=False once the level exists")
    assert kubectl("delete", "prioritylevelconfiguration", "later").returncode == 0
    wait_until(lambda: dangling("True"), within=20, what="Dangling=True again once the level is gone")


@pytest.mark.parametrize(("doc", "message"), [
    (level("no-limited", type="Limited"), "spec.limited: Required value: must not be empty when type is Limited"),
    (level("exempt-limited", type="Exempt", limited={"nominalConcurrencyShares": 1}),
     "spec.limited: Forbidden: must be nil if the type is not Limited"),
    (level("odd", type="Sometimes"), 'spec.type: Unsupported value: "Sometimes": supported values: "Exempt", '
                                      '"Limited"'),
    (level("hands", type="Limited", limited={"limitResponse": {"type": "Queue", "queuing": {
        "queues": 4, "handSize": 8, "queueLengthLimit": 5}}}),
     "spec.limited.limitResponse.queuing.handSize: Invalid value: 8: should not be greater than queues (4)"),
    (level("lend", type="Limited", limited={"lendablePercent": 101}),
     "spec.limited.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive"),
    (schema("no-level", ""), "spec.priorityLevelConfiguration.name: Required value: must reference a priority level"),
    (schema("too-late", "x", matchingPrecedence=10001),
     "spec.matchingPrecedence: Invalid value: 10001: must not be greater than 10000"),
    (schema("by-what", "x", distinguisherMethod={"type": "ByColor"}),
     'spec.distinguisherMethod.type: Unsupported value: "ByColor": supported values: "ByNamespace", "ByUser"'),
])
def test_bad_objects_are_refused_naming_the_field(kubectl: Kubectl, doc: str, message: str) -> None:
    r = kubectl("apply", "-f", "-", stdin=doc)
    assert r.returncode != 0 and " is invalid: " in r.stderr and message in r.stderr, r.stderr


def test_mandatory_objects_come_back(kubectl: Kubectl) -> None:
    gone = kubectl("delete", "flowschema", "catch-all")
    assert gone.returncode == 0, gone.stderr
    changed = kubectl("patch", "prioritylevelconfiguration", "catch-all", "--type=merge", "-p",
                      '{"spec":{"limited":{"nominalConcurrencyShares":50}}}')
    assert changed.returncode == 0, changed.stderr

    def restored() -> bool:
        fs = kubectl("get", "flowschema", "catch-all", "-o", "json")
        plc = kubectl("get", "prioritylevelconfiguration", "catch-all", "-o", "json")
        return fs.returncode == 0 and plc.returncode == 0 and \
            json.loads(plc.stdout)["spec"]["limited"]["nominalConcurrencyShares"] == 5
    wait_until(restored, within=20, what="the catch-all FlowSchema recreated and its level's spec put back")
