"""Kubernetes' CEL extension libraries and cost budget as a kubectl (v1.32) user meets them
on a real server: a CRD whose rules use quantity(), url(), cidr(), format, the list, regex and
string libraries is accepted and its objects refused (422, the rule's message, the field's
path); a rule too costly for its schema's bounds is refused with upstream's message; rules
that together pass the runtime budget stop with upstream's message; a ValidatingAdmissionPolicy
uses the libraries in its variables, matchConditions, validations and messageExpression."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer, served
from tests.e2e.helpers import Kubectl, policy_namespace, wait_until

GROUP = "cel.example.com"


def crd(plural: str, kind: str, spec_schema: dict[str, Any]) -> str:
    return yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": plural[:-1], "kind": kind},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": spec_schema}}}}]}})


def string(max_length: int, rule: str, **more: str) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "x-kubernetes-validations": [{"rule": rule, **more}]}


SERVICE_SPEC = {"type": "object", "properties": {
    "url": string(256, "isURL(self) && url(self).getScheme() == 'https'", message="must be an https URL"),
    "memory": string(32, "isQuantity(self) && quantity(self).isLessThan(quantity('1Gi'))",
                     message="must be a quantity under 1Gi"),
    "network": string(64, "isCIDR(self) && cidr(self).containsIP('10.0.0.1')",
                      messageExpression="'network ' + self + ' does not hold 10.0.0.1'"),
    "hostname": string(253, "!format.dns1123Label().validate(self).hasValue()",
                       messageExpression="format.dns1123Label().validate(self).value().join('; ')"),
    "ports": {"type": "array", "maxItems": 16, "items": {"type": "integer"},
              "x-kubernetes-validations": [{"rule": "self.isSorted() && self.max() < 65536",
                                            "message": "ports must be sorted and under 65536"}]},
    "tags": {"type": "array", "maxItems": 8, "items": {"type": "string", "maxLength": 32},
             "x-kubernetes-validations": [{"rule": "self.all(t, t.lowerAscii() == t && t.find('[0-9]') == '')",
                                           "message": "tags are lowercase words"}]},
}}
GOOD = {"url": "https://api.example.com:8443/v1", "memory": "512Mi", "network": "10.0.0.0/16",
        "hostname": "api-1", "ports": [80, 443, 8443], "tags": ["web", "public"]}


def service(name: str, **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": f"{GROUP}/v1", "kind": "Service", "metadata": {"name": name},
                           "spec": {**GOOD, **spec}})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of this module's own: CRDs and policies are cluster-wide."""
    yield from served(tmp_path_factory.mktemp("cel-server"))


@pytest.fixture
def kubectl(server: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    with policy_namespace(server.kubeconfig, namespace, str(tmp_path),
                          *(f"{plural}.{GROUP}" for plural in ("services", "budgets"))) as k:
        yield k


def established(kubectl: Kubectl, name: str) -> None:
    done = kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=20s")
    assert done.returncode == 0, done.stderr


def test_crd_rules_with_the_kubernetes_libraries(kubectl: Kubectl, namespace: str) -> None:
    made = kubectl("apply", "-f", "-", stdin=crd("services", "Service", SERVICE_SPEC))
    assert made.returncode == 0, made.stderr
    established(kubectl, f"services.{GROUP}")
    ok = kubectl("-n", namespace, "apply", "-f", "-", stdin=service("good"))
    assert ok.returncode == 0, ok.stderr
    for field, bad, message in [
        ("url", "http://api.example.com", "must be an https URL"),
        ("url", "not a url", "must be an https URL"),
        ("memory", "2Gi", "must be a quantity under 1Gi"),
        ("memory", "lots", "must be a quantity under 1Gi"),
        ("network", "192.168.0.0/16", "network 192.168.0.0/16 does not hold 10.0.0.1"),
        ("hostname", "Api_1", "a lowercase RFC 1123 label must consist of lower case alphanumeric characters"),
        ("ports", [443, 80], "ports must be sorted and under 65536"),
        ("tags", ["web", "v2"], "tags are lowercase words"),
    ]:
        out = kubectl("-n", namespace, "apply", "-f", "-", stdin=service("bad", **{field: bad}))
        assert out.returncode != 0, (field, bad)
        assert f'The Service "bad" is invalid: spec.{field}: Invalid value: ' in out.stderr, out.stderr
        assert message in out.stderr, out.stderr
    raw = kubectl("-n", namespace, "create", "-f", "-", "-v=6", stdin=service("bad", memory="4Gi"))
    assert "422 Unprocessable Entity" in raw.stderr


def test_a_rule_too_costly_for_its_bounds_is_refused(kubectl: Kubectl) -> None:
    names: dict[str, Any] = {"type": "array", "items": {"type": "string"},
                             "x-kubernetes-validations": [{"rule": "self.all(n, n.matches('^[a-z]+$'))"}]}
    unbounded = {"type": "object", "properties": {"names": names}}
    out = kubectl("apply", "-f", "-", stdin=crd("services", "Service", unbounded))
    assert out.returncode != 0
    assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[names].x-kubernetes-validations[0]"
            ".rule: Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the "
            "rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
            ) in out.stderr, out.stderr
    # Bounded, the same rule is cheap enough.
    names["maxItems"], names["items"]["maxLength"] = 100, 64
    made = kubectl("apply", "-f", "-", stdin=crd("services", "Service", unbounded))
    assert made.returncode == 0, made.stderr


def test_rules_over_the_runtime_budget_stop(kubectl: Kubectl, namespace: str) -> None:
    """Two rules on each of 10 items, each cheap enough alone (their estimate, times 10, is
    under the per-rule limit), together cost more than the 10^7 an object's rules may spend."""
    pattern = "^a*" + "(b{0,1})" * 40 + "$"
    item = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 100000}},
            "x-kubernetes-validations": [{"rule": f"self.s.matches('{pattern}')"},
                                         {"rule": f"self.s.matches('{pattern.replace('b', 'c')}')"}]}
    spec = {"type": "object", "properties": {"items": {"type": "array", "maxItems": 10, "items": item}}}
    made = kubectl("apply", "-f", "-", stdin=crd("budgets", "Budget", spec))
    assert made.returncode == 0, made.stderr
    established(kubectl, f"budgets.{GROUP}")

    def budget(name: str, n: int) -> str:
        return json.dumps({"apiVersion": f"{GROUP}/v1", "kind": "Budget", "metadata": {"name": name},
                           "spec": {"items": [{"s": "a" * 100000}] * n}})
    few = kubectl("-n", namespace, "create", "-f", "-", stdin=budget("few", 2))
    assert few.returncode == 0, few.stderr
    many = kubectl("-n", namespace, "create", "-f", "-", stdin=budget("many", 10))
    assert many.returncode != 0
    assert ('The Budget "many" is invalid: spec.items[6]: Invalid value: "object": validation failed due to running '
            "out of cost budget, no more validation rules will be run") in many.stderr, many.stderr


def deployment(name: str, memory: str) -> str:
    return yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                    "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                                        {"name": "c", "image": "busybox",
                                         "resources": {"limits": {"memory": memory}}}]}}}})


def test_a_policy_uses_the_libraries(kubectl: Kubectl, namespace: str) -> None:
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": "memory.example.com"},
              "spec": {"matchConstraints": {"resourceRules": [{
                  "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                  "resources": ["deployments"]}]},
                  "variables": [{"name": "limit", "expression": "quantity('1Gi')"}],
                  "matchConditions": [{"name": "mem-prefixed",
                                       "expression": "object.metadata.name.find('^mem-') != ''"}],
                  "validations": [{
                      "expression": "object.spec.template.spec.containers.all(c, !has(c.resources.limits) || "
                                    "!('memory' in c.resources.limits) || "
                                    "quantity(c.resources.limits.memory).isLessThan(variables.limit))",
                      "messageExpression": "'%s asks for %s of memory, not under 1Gi'.format([object.metadata.name, "
                                           "object.spec.template.spec.containers[0].resources.limits.memory])"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": "memory"},
               "spec": {"policyName": "memory.example.com", "validationActions": ["Deny"],
                        "matchResources": {"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": namespace}}}}}
    for doc in (policy, binding):
        made = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))
        assert made.returncode == 0, made.stderr
    seen: list[str] = []

    def refused() -> bool:
        r = kubectl("-n", namespace, "create", "-f", "-", stdin=deployment("mem-big", "2Gi"))
        seen[:] = [r.stderr]
        if r.returncode == 0:
            kubectl("-n", namespace, "delete", "deployment", "mem-big", "--wait=false")
        return r.returncode != 0
    wait_until(refused, within=20, what="the policy refusing mem-big")
    assert ("ValidatingAdmissionPolicy 'memory.example.com' with binding 'memory' denied request: "
            "mem-big asks for 2Gi of memory, not under 1Gi") in seen[0], seen[0]
    small = kubectl("-n", namespace, "create", "-f", "-", stdin=deployment("mem-small", "512Mi"))
    assert small.returncode == 0, small.stderr
    other = kubectl("-n", namespace, "create", "-f", "-", stdin=deployment("other-big", "2Gi"))
    assert other.returncode == 0, other.stderr  # the match condition leaves it alone
