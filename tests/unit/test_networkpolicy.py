"""NetworkPolicy (networking.k8s.io/v1): Kubernetes' defaults, messages and printer columns."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.helpers import must_by_kind

from bosun.api import schema
from bosun.api.defaults import apply_defaults
from bosun.api.registry import find
from bosun.api.tables import to_table
from bosun.api.validation import validate_unchecked

NETPOL = must_by_kind("networking.k8s.io/v1", "NetworkPolicy")


def policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "db", "namespace": "default"}, "spec": spec}


def defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    apply_defaults(NETPOL, out)
    return out


def errors(**spec: Any) -> list[str]:
    return [e.detail() for e in validate_unchecked(NETPOL, defaulted(policy(**spec)))]


def test_row_short_name_and_scope() -> None:
    assert find("netpol") is NETPOL
    assert find("networkpolicies.networking.k8s.io") is NETPOL
    assert NETPOL.namespaced and NETPOL.subresources == ()


@pytest.mark.parametrize("spec, types", [
    ({}, ["Ingress"]),
    ({"ingress": [{}]}, ["Ingress"]),
    ({"egress": [{}]}, ["Ingress", "Egress"]),
    ({"egress": []}, ["Ingress"]),
    ({"egress": [{}], "policyTypes": ["Egress"]}, ["Egress"]),
])
def test_policy_types_default_from_the_rules_given(spec: dict[str, Any], types: list[str]) -> None:
    assert defaulted(policy(**spec))["spec"]["policyTypes"] == types


def test_defaults_protocol_tcp_and_empty_pod_selector() -> None:
    out = defaulted(policy(ingress=[{"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}],
                           egress=[{"ports": [{"port": 443}]}]))
    spec = out["spec"]
    assert spec["podSelector"] == {}
    assert [p["protocol"] for p in spec["ingress"][0]["ports"]] == ["TCP", "UDP"]
    assert spec["egress"][0]["ports"][0]["protocol"] == "TCP"
    no_spec = policy()
    del no_spec["spec"]
    assert defaulted(no_spec)["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_a_full_policy_is_valid() -> None:
    assert errors(podSelector={"matchLabels": {"app": "db"}},
                  ingress=[{"from": [{"podSelector": {"matchLabels": {"role": "api"}},
                                      "namespaceSelector": {"matchLabels": {"team": "a"}}},
                                     {"ipBlock": {"cidr": "192.168.1.7/24", "except": ["192.168.1.128/25"]}}],
                            "ports": [{"port": 5432, "endPort": 5440, "protocol": "SCTP"}, {"port": "pg"}]}],
                  egress=[{"to": [{"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}}]}]) == []


@pytest.mark.parametrize("block, message", [
    ({"cidr": "10.0.0.0/33"}, 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": not a valid CIDR'),
    ({"cidr": "10.0.0.1"}, 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.1": not a valid CIDR'),
    ({"cidr": ""}, "spec.ingress[0].from[0].ipBlock.cidr: Required value"),
    ({"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]},
     'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`'),
    ({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]},
     'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`'),
    ({"cidr": "10.0.0.0/8", "except": ["fd00::/64"]},
     'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "fd00::/64": must be a strict subset of `cidr`'),
    ({"cidr": "10.0.0.0/8", "except": ["x/8"]},
     'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "x/8": not a valid CIDR'),
])
def test_ip_block_errors(block: dict[str, Any], message: str) -> None:
    assert errors(ingress=[{"from": [{"ipBlock": block}]}]) == [message]


@pytest.mark.parametrize("port, message", [
    ({"port": 0}, "spec.egress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ({"port": 70000}, "spec.egress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ({"port": 80, "endPort": 79},
     "spec.egress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`"),
    ({"port": 80, "endPort": 65536},
     "spec.egress[0].ports[0].endPort: Invalid value: 65536: must be between 1 and 65535, inclusive"),
    ({"port": "http", "endPort": 90},
     "spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"),
    ({"endPort": 90},
     "spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified"),
    ({"port": 80, "protocol": "ICMP"},
     'spec.egress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'),
    ({"port": "Not_A_Name"},
     'spec.egress[0].ports[0].port: Invalid value: "Not_A_Name": '
     "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
])
def test_port_errors(port: dict[str, Any], message: str) -> None:
    assert errors(egress=[{"ports": [port]}]) == [message]


def test_peer_errors() -> None:
    assert errors(ingress=[{"from": [{}]}]) == ["spec.ingress[0].from[0]: Required value: must specify a peer"]
    assert errors(egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]) == [
        "spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer"]
    # A pod and a namespace selector together are one peer ("these pods in those namespaces").
    assert errors(egress=[{"to": [{"namespaceSelector": {}, "podSelector": {}}]}]) == []


def test_policy_types_errors() -> None:
    assert errors(policyTypes=["Ingress", "Sideways"]) == [
        'spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"']
    assert errors(policyTypes=["Ingress", "Egress", "Ingress"]) == [
        'spec.policyTypes: Invalid value: []networking.PolicyType{"Ingress", "Egress", "Ingress"}: '
        "may not specify more than two policyTypes"]


def test_bad_selector_is_named() -> None:
    assert errors(podSelector={"matchExpressions": [{"key": "a", "operator": "Near"}]}) == [
        'spec.podSelector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator']


def test_schema_knows_every_field() -> None:
    obj = defaulted(policy(ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 80}]}]))
    assert schema.check(NETPOL, obj) == ([], [])
    obj["spec"]["ingress"][0]["ports"][0]["portz"] = 1
    unknown, _ = schema.check(NETPOL, obj)
    assert unknown == ["spec.ingress[0].ports[0].portz"]


def test_table_pod_selector_column() -> None:
    now = datetime(2024, 5, 10, 12, 0, 0, tzinfo=UTC)
    objs = [defaulted(policy()), defaulted(policy(podSelector={"matchLabels": {"app": "db", "tier": "x"}}))]
    for o in objs:
        o["metadata"]["creationTimestamp"] = "2024-05-10T11:00:00Z"
    table = to_table(NETPOL, objs, now=now)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Pod-Selector", "Age"]
    assert [r["cells"] for r in table["rows"]] == [["db", "<none>", "60m"], ["db", "app=db,tier=x", "60m"]]
