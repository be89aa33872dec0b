"""NetworkPolicy through real kubectl 1.32: served, defaulted, printed and validated as upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.conftest import RunningServer
from tests.e2e.test_kubectl import Kubectl


@pytest.fixture
def kubectl(api_server: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    k = Kubectl(api_server.kubeconfig, namespace, tmp_path / "kubecache")
    k("create", "namespace", namespace, ns=False)
    try:
        yield k
    finally:
        k("delete", "namespace", namespace, "--wait=false", ns=False, check=False)


POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db-from-api
spec:
  podSelector:
    matchLabels: {app: db}
  ingress:
  - from:
    - podSelector: {matchLabels: {role: api}}
    - ipBlock: {cidr: 10.20.0.0/16, except: [10.20.1.0/24]}
    ports:
    - port: 5432
  egress:
  - to:
    - namespaceSelector: {}
    ports:
    - {port: 53, protocol: UDP}
    - {port: 30000, endPort: 32767}
"""

DENY_ALL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
spec:
  podSelector: {}
"""


def test_apply_get_round_trip_and_table(kubectl: Kubectl) -> None:
    assert "networkpolicy.networking.k8s.io/db-from-api created" in kubectl("apply", "-f", "-", input=POLICY).stdout
    kubectl("apply", "-f", "-", input=DENY_ALL)
    got = kubectl.json("get", "netpol", "db-from-api")
    spec = got["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"][0]["ports"] == [{"port": 5432, "protocol": "TCP"}]
    assert spec["ingress"][0]["from"][1] == {"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.1.0/24"]}}
    assert spec["egress"][0]["ports"][1] == {"port": 30000, "endPort": 32767, "protocol": "TCP"}
    assert kubectl.json("get", "networkpolicy", "deny-all")["spec"] == {"podSelector": {},
                                                                         "policyTypes": ["Ingress"]}
    # Re-applying the same manifest writes nothing. (kubectl says "configured": its patch
    # replaces the atomic rule lists, which differ from the live ones by the defaulted
    # protocol, as against kube-apiserver; the server sees the result is unchanged.)
    kubectl("apply", "-f", "-", input=POLICY)
    assert kubectl.json("get", "netpol", "db-from-api")["metadata"]["resourceVersion"] == \
        got["metadata"]["resourceVersion"]
    # The round trip: what get -o yaml prints replaces the object unchanged.
    as_yaml = kubectl("get", "netpol", "db-from-api", "-o", "yaml").stdout
    kubectl("replace", "-f", "-", input=as_yaml)
    assert yaml.safe_load(kubectl("get", "netpol", "db-from-api", "-o", "yaml").stdout)["spec"] == spec
    lines = kubectl("get", "netpol").stdout.splitlines()
    assert lines[0].split() == ["NAME", "POD-SELECTOR", "AGE"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert rows == {"db-from-api": "app=db", "deny-all": "<none>"}
    resources = kubectl("api-resources", "--api-group=networking.k8s.io", ns=False).stdout
    assert any(line.split()[:2] == ["networkpolicies", "netpol"] for line in resources.splitlines())
    kubectl("explain", "networkpolicy.spec.ingress.from.ipBlock", ns=False)
    assert "deleted" in kubectl("delete", "netpol", "deny-all").stdout


def test_bad_cidr_and_ports_are_refused_with_422(kubectl: Kubectl) -> None:
    bad = POLICY.replace("10.20.0.0/16", "10.20.0.0/40").replace("endPort: 32767", "endPort: 29999")
    p = kubectl("create", "-f", "-", "-v=6", input=bad, check=False)
    assert p.returncode != 0
    assert "422 Unprocessable Entity" in p.stderr
    assert 'The NetworkPolicy "db-from-api" is invalid' in p.stderr
    assert 'spec.ingress[0].from[1].ipBlock.cidr: Invalid value: "10.20.0.0/40": not a valid CIDR' in p.stderr
    assert "spec.egress[0].ports[1].endPort: Invalid value: 30000: must be greater than or equal to `port`" \
        in p.stderr
    outside = POLICY.replace("except: [10.20.1.0/24]", "except: [10.30.1.0/24]")
    p = kubectl("apply", "-f", "-", input=outside, check=False)
    assert 'spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "10.30.1.0/24": ' \
           "must be a strict subset of `cidr`" in p.stderr
    typo = POLICY.replace("policyTypes", "x").replace("  podSelector:\n    matchLabels: {app: db}",
                                                       "  podSelector: {}\n  policyTypes: [Ingress, Sideways]")
    p = kubectl("apply", "-f", "-", input=typo, check=False)
    assert 'spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"' in p.stderr
    unknown = POLICY.replace("    - port: 5432", "    - port: 5432\n      portz: 1")
    p = kubectl("apply", "-f", "-", input=unknown, check=False)
    assert 'unknown field "spec.ingress[0].ports[0].portz"' in p.stderr
    assert "NotFound" in kubectl("get", "netpol", "db-from-api", check=False).stderr
