"""The FlowSchemas and PriorityLevelConfigurations every kube-apiserver keeps (k8s.io/apiserver's
flowcontrol bootstrap, v1): the mandatory ``exempt`` and ``catch-all``, recreated whenever
they are deleted, and the suggested configuration (system, node-high, leader-election,
workload-high, workload-low, global-default and the schemas that lead to them), created when
missing at start. Both are put back to these specs while they carry
``apf.kubernetes.io/autoupdate-spec: "true"``.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
GROUP = "flowcontrol.apiserver.k8s.io"
AUTOUPDATE = "apf.kubernetes.io/autoupdate-spec"

_EVERY = ["*"]
_ALL_RESOURCES = {"verbs": _EVERY, "apiGroups": _EVERY, "resources": _EVERY, "clusterScope": True,
                  "namespaces": _EVERY}
_ALL_URLS = {"verbs": _EVERY, "nonResourceURLs": _EVERY}
_GET_CREATE_UPDATE = ["get", "create", "update"]
CONTROLLER_MANAGER = "system:kube-controller-manager"
SCHEDULER = "system:kube-scheduler"


def _object(kind: str, name: str, spec: Obj) -> Obj:
    return {"apiVersion": f"{GROUP}/v1", "kind": kind,
            "metadata": {"name": name, "annotations": {AUTOUPDATE: "true"}}, "spec": spec}


def _group(name: str) -> Obj:
    return {"kind": "Group", "group": {"name": name}}


def _user(name: str) -> Obj:
    return {"kind": "User", "user": {"name": name}}


def _kube_system_account(name: str) -> Obj:
    return {"kind": "ServiceAccount", "serviceAccount": {"namespace": "kube-system", "name": name}}


def _resources(verbs: list[str], groups: list[str], resources: list[str], namespaces: list[str],
               cluster: bool) -> Obj:
    out: Obj = {"verbs": verbs, "apiGroups": groups, "resources": resources, "namespaces": namespaces}
    if cluster:
        out["clusterScope"] = True
    return out


def _schema(name: str, level: str, precedence: int, distinguisher: str, subjects: list[Obj],
            resource_rules: list[Obj], non_resource_rules: list[Obj] | None = None) -> Obj:
    rule: Obj = {"subjects": subjects}
    if resource_rules:
        rule["resourceRules"] = resource_rules
    if non_resource_rules:
        rule["nonResourceRules"] = non_resource_rules
    spec: Obj = {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence, "rules": [rule]}
    if distinguisher:
        spec["distinguisherMethod"] = {"type": distinguisher}
    return _object("FlowSchema", name, spec)


def _queued(name: str, shares: int, lendable: int, queues: int, hand: int) -> Obj:
    return _object("PriorityLevelConfiguration", name, {"type": "Limited", "limited": {
        "nominalConcurrencyShares": shares, "lendablePercent": lendable,
        "limitResponse": {"type": "Queue", "queuing": {"queues": queues, "handSize": hand, "queueLengthLimit": 50}}}})


def mandatory_priority_levels() -> list[Obj]:
    return [
        _object("PriorityLevelConfiguration", "exempt", {
            "type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}),
        _object("PriorityLevelConfiguration", "catch-all", {
            "type": "Limited", "limited": {"nominalConcurrencyShares": 5, "lendablePercent": 0,
                                           "limitResponse": {"type": "Reject"}}}),
    ]


def mandatory_flow_schemas() -> list[Obj]:
    """system:masters exempt, everyone else caught last."""
    return [
        _schema("exempt", "exempt", 1, "", [_group("system:masters")], [_ALL_RESOURCES], [_ALL_URLS]),
        _schema("catch-all", "catch-all", 10000, "ByUser",
                [_group("system:unauthenticated"), _group("system:authenticated")], [_ALL_RESOURCES], [_ALL_URLS]),
    ]


def suggested_priority_levels() -> list[Obj]:
    return [
        _queued("system", 30, 33, 64, 6),
        _queued("node-high", 40, 25, 64, 6),
        _queued("leader-election", 10, 0, 16, 4),
        _queued("workload-high", 40, 50, 128, 6),
        _queued("workload-low", 100, 90, 128, 6),
        _queued("global-default", 20, 50, 128, 6),
    ]


def suggested_flow_schemas() -> list[Obj]:
    everyone = [_group("system:unauthenticated"), _group("system:authenticated")]
    leases = _resources(_GET_CREATE_UPDATE, ["coordination.k8s.io"], ["leases"], _EVERY, False)
    return [
        _schema("system-nodes", "system", 500, "ByUser", [_group("system:nodes")], [_ALL_RESOURCES], [_ALL_URLS]),
        _schema("system-node-high", "node-high", 400, "ByUser", [_group("system:nodes")], [
            _resources(_EVERY, [""], ["nodes", "nodes/status"], _EVERY, True),
            _resources(_EVERY, ["coordination.k8s.io"], ["leases"], _EVERY, False)]),
        _schema("probes", "exempt", 2, "", everyone, [], [
            {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]),
        _schema("system-leader-election", "leader-election", 100, "ByUser",
                [_user(CONTROLLER_MANAGER), _user(SCHEDULER), _kube_system_account("*")], [
                    _resources(_GET_CREATE_UPDATE, [""], ["endpoints", "configmaps"], ["kube-system"], False),
                    leases]),
        _schema("endpoint-controller", "workload-high", 150, "ByUser",
                [_user(CONTROLLER_MANAGER), _kube_system_account("endpoint-controller"),
                 _kube_system_account("endpointslicemirroring-controller")],
                [_resources(_GET_CREATE_UPDATE, [""], ["endpoints"], _EVERY, False)]),
        _schema("workload-leader-election", "leader-election", 200, "ByUser",
                [_kube_system_account("*")], [
                    _resources(_GET_CREATE_UPDATE, [""], ["endpoints", "configmaps"], _EVERY, False), leases]),
        _schema("kube-controller-manager", "workload-high", 800, "ByNamespace", [_user(CONTROLLER_MANAGER)],
                [_ALL_RESOURCES], [_ALL_URLS]),
        _schema("kube-scheduler", "workload-high", 800, "ByNamespace", [_user(SCHEDULER)],
                [_ALL_RESOURCES], [_ALL_URLS]),
        _schema("kube-system-service-accounts", "workload-high", 900, "ByNamespace", [_kube_system_account("*")],
                [_ALL_RESOURCES], [_ALL_URLS]),
        _schema("service-accounts", "workload-low", 9000, "ByUser", [_group("system:serviceaccounts")],
                [_ALL_RESOURCES], [_ALL_URLS]),
        _schema("global-default", "global-default", 9900, "ByUser", everyone, [_ALL_RESOURCES], [_ALL_URLS]),
    ]
