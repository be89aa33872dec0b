"""ValidatingAdmissionPolicy's parts that need no server: which writes a policy's rules select
(Kubernetes' resource patterns, scope, exclusions, selectors, equivalent versions), the
defaults and validation of the kinds, and the plugin's verdicts on in-memory policies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bosun.api.admission.base import CREATE, DELETE, WARNINGS, Request
from bosun.api.admission.policy import ValidatingAdmissionPolicy
from bosun.api.admission.policymatch import Attributes, resources_match, rule_matches
from bosun.api.admission.policyset import Policies
from bosun.api.errors import APIError
from bosun.api.registry import must_by_plural
from bosun.api.validation import validate_unchecked

DEPLOYMENTS = must_by_plural("apps", "v1", "deployments")
POLICIES = must_by_plural("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies")
BINDINGS = must_by_plural("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings")


def attrs(resource: str = "deployments", sub: str = "", op: str = "CREATE", namespaced: bool = True,
          version: str = "v1", equivalent: tuple[str, ...] = ()) -> Attributes:
    return Attributes(op, "apps", version, resource, sub, namespaced, "web", equivalent)


def rule(**over: Any) -> dict[str, Any]:
    return {"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"],
            **over}


@pytest.mark.parametrize(("resources", "resource", "sub", "matched"), [
    (["deployments"], "deployments", "", True),
    (["deployments"], "deployments", "scale", False),
    (["*"], "deployments", "", True),
    (["*"], "deployments", "status", False),
    (["*/*"], "deployments", "status", True),
    (["*/*"], "deployments", "", False),
    (["deployments/*"], "deployments", "scale", True),
    (["*/scale"], "statefulsets", "scale", True),
    (["*/scale"], "statefulsets", "status", False),
])
def test_resource_patterns(resources: list[str], resource: str, sub: str, matched: bool) -> None:
    assert rule_matches(rule(resources=resources), attrs(resource, sub), equivalent=False) is matched


def test_operations_scope_names_and_equivalent_versions() -> None:
    assert not rule_matches(rule(), attrs(op="UPDATE"), equivalent=False)
    assert rule_matches(rule(operations=["*"]), attrs(op="DELETE"), equivalent=False)
    assert not rule_matches(rule(scope="Cluster"), attrs(), equivalent=False)
    assert rule_matches(rule(scope="Namespaced"), attrs(), equivalent=False)
    assert not rule_matches(rule(resourceNames=["other"]), attrs(), equivalent=False)
    assert rule_matches(rule(resourceNames=["web"]), attrs(), equivalent=False)
    hpa = attrs(version="v1", equivalent=("v2",))
    assert not rule_matches(rule(apiVersions=["v2"]), hpa, equivalent=False)
    assert rule_matches(rule(apiVersions=["v2"]), hpa, equivalent=True)


def test_match_resources_selectors_and_exclusions() -> None:
    labelled = {"metadata": {"labels": {"tier": "web"}}}
    ns = {"metadata": {"labels": {"env": "test"}}}
    m = {"resourceRules": [rule()], "namespaceSelector": {"matchLabels": {"env": "test"}},
         "objectSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}}
    assert resources_match(m, attrs(), labelled, None, ns, rules_needed=True)
    assert not resources_match(m, attrs(), labelled, None, {"metadata": {}}, rules_needed=True)
    assert not resources_match(m, attrs(), {"metadata": {}}, None, ns, rules_needed=True)
    assert resources_match(m, attrs(), {"metadata": {}}, labelled, ns, rules_needed=True)  # the old object's labels
    excluded = dict(m, excludeResourceRules=[rule(resourceNames=["web"])])
    assert not resources_match(excluded, attrs(), labelled, None, ns, rules_needed=True)
    # A binding without rules narrows only by its selectors; a policy must have rules.
    assert resources_match({}, attrs(), None, None, None, rules_needed=False)
    assert not resources_match({}, attrs(), None, None, None, rules_needed=True)


def test_defaults_and_validation_messages() -> None:
    policy: dict[str, Any] = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                              "metadata": {"name": "p"},
                              "spec": {"matchConstraints": {"resourceRules": [rule()]},
                                       "validations": [{"expression": "object.spec.replicas <"}]}}
    POLICIES.strategy.default(POLICIES, policy)
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["matchPolicy"] == "Equivalent"
    errs = [e.detail() for e in validate_unchecked(POLICIES, policy)]
    assert len(errs) == 1 and errs[0].startswith(
        'spec.validations[0].expression: Invalid value: "object.spec.replicas <": compilation failed: ERROR: '), errs
    binding: dict[str, Any] = {"apiVersion": "admissionregistration.k8s.io/v1",
                               "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "b"},
                               "spec": {"policyName": "p", "validationActions": ["Deny", "Deny"],
                                        "paramRef": {"name": "x"}}}
    BINDINGS.strategy.default(BINDINGS, binding)
    assert binding["spec"]["paramRef"]["parameterNotFoundAction"] == "Deny"
    assert [e.detail() for e in validate_unchecked(BINDINGS, binding)] == [
        'spec.validationActions[1]: Duplicate value: "Deny"']


def _policies(validations: list[dict[str, Any]], actions: list[str], **spec: Any) -> Policies:
    p = Policies()
    p.policies["p"] = {"metadata": {"name": "p"}, "spec": {
        "failurePolicy": "Fail", "matchConstraints": {"resourceRules": [rule(operations=["*"])]},
        "validations": validations, **spec}}
    p.bindings["b"] = {"metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": actions}}
    p._pairs = None
    return p


def _admit(policies: Policies, replicas: int, op: str = CREATE) -> list[str]:
    obj = {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"replicas": replicas}}
    req = Request(CREATE if op == CREATE else DELETE, DEPLOYMENTS, "ns", "web", obj)
    warnings: list[str] = []

    async def run() -> None:
        WARNINGS.set(warnings)
        await ValidatingAdmissionPolicy(policies).admit(req)
    asyncio.run(run())
    return warnings


def test_deny_warn_and_failure_policy() -> None:
    deny = _policies([{"expression": "object.spec.replicas <= 5", "reason": "Forbidden"}], ["Deny"])
    with pytest.raises(APIError) as info:
        _admit(deny, 7)
    assert info.value.code == 403 and info.value.message == (
        "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: "
        "failed expression: object.spec.replicas <= 5")
    assert _admit(deny, 3) == []
    warn = _policies([{"expression": "variables.r <= 5", "message": "too many"}], ["Warn"],
                     variables=[{"name": "r", "expression": "object.spec.replicas"}])
    assert _admit(warn, 7) == ["Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': too many"]
    # On DELETE ``object`` is null: the rule errs, and failurePolicy decides.
    broken = _policies([{"expression": "object.spec.replicas <= 5"}], ["Deny"])
    with pytest.raises(APIError) as info:
        _admit(broken, 1, DELETE)
    assert "resulted in error" in info.value.message and info.value.code == 422
    # An error under failurePolicy Fail is a failed validation: a Warn binding warns.
    broken.bindings["b"]["spec"]["validationActions"] = ["Warn"]
    assert [w.startswith("Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': expression "
                         "'object.spec.replicas <= 5' resulted in error") for w in _admit(broken, 1, DELETE)] == [True]
    broken.policies["p"]["spec"]["failurePolicy"] = "Ignore"
    assert _admit(broken, 1, DELETE) == []
