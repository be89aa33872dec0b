"""Which writes an admission webhook's rules, selectors and match conditions pick, and how a
webhook's answer is read (upstream's matchers and response checks, case by case)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from bosun.api.admission.webhookcall import CallError, read_response
from bosun.api.admission.webhookmatch import (
    ConditionError,
    compile_configuration,
    conditions_hold,
    namespace_matches,
    objects_match,
)
from bosun.api.admission.webhooks import denial


def hook(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                            "clientConfig": {"url": "https://x.example.com"},
                            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                       "resources": ["pods"], "scope": "*"}]}
    base.update(extra)
    return base


def compiled(**extra: Any) -> Any:
    (one,) = compile_configuration({"metadata": {"name": "cfg"}, "webhooks": [hook(**extra)]})
    return one


@pytest.mark.parametrize(("resources", "plural", "sub", "want"), [
    (["*"], "pods", None, True),
    (["*"], "pods", "status", False),
    (["pods"], "pods", "status", False),
    (["pods/status"], "pods", "status", True),
    (["pods/status"], "pods", None, False),
    (["pods/*"], "pods", "exec", True),
    (["pods/*"], "services", "status", False),
    (["*/status"], "services", "status", True),
    (["*/status"], "services", "scale", False),
    (["*/*"], "deployments", "scale", True),
    (["*/*"], "deployments", None, True),
])
def test_resources_and_subresources(resources: list[str], plural: str, sub: str | None, want: bool) -> None:
    rule = compiled(rules=[{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": resources,
                            "scope": "*"}]).rules[0]
    assert rule.matches("UPDATE", "apps", "v1", plural, sub, True) is want


def test_operations_groups_versions_and_scope() -> None:
    rule = compiled().rules[0]
    assert rule.matches("CREATE", "", "v1", "pods", None, True)
    assert not rule.matches("UPDATE", "", "v1", "pods", None, True)
    assert not rule.matches("CREATE", "apps", "v1", "pods", None, True)
    assert not rule.matches("CREATE", "", "v2", "pods", None, True)
    namespaced = compiled(rules=[dict(hook()["rules"][0], scope="Namespaced", resources=["*"])]).rules[0]
    cluster = compiled(rules=[dict(hook()["rules"][0], scope="Cluster", resources=["*"])]).rules[0]
    assert namespaced.matches("CREATE", "", "v1", "pods", None, True)
    assert not namespaced.matches("CREATE", "", "v1", "nodes", None, False)
    assert cluster.matches("CREATE", "", "v1", "nodes", None, False)
    assert not cluster.matches("CREATE", "", "v1", "pods", None, True)


def test_selectors() -> None:
    h = compiled(namespaceSelector={"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
                 objectSelector={"matchLabels": {"inject": "yes"}})
    assert namespace_matches(h, {"env": "dev"}) and not namespace_matches(h, {"env": "prod"})
    assert namespace_matches(h, None)  # a cluster-scoped write of another kind is never excluded
    new: dict[str, Any] = {"metadata": {"labels": {"inject": "yes"}}}
    old: dict[str, Any] = {"metadata": {"labels": {}}}
    assert objects_match(h, new, None) and objects_match(h, {"metadata": {}}, new) and objects_match(h, old, new)
    assert not objects_match(h, old, None) and not objects_match(h, None, old)
    everything = compiled()
    assert objects_match(everything, None, None) and namespace_matches(everything, {"env": "prod"})


def test_match_conditions() -> None:
    h = compiled(matchConditions=[{"name": "not-nodes", "expression": '!("system:nodes" in request.userInfo.groups)'}])
    assert conditions_hold(h, {"object": {}, "oldObject": None, "request": {"userInfo": {"groups": ["a"]}}})
    assert not conditions_hold(h, {"object": {}, "oldObject": None,
                                   "request": {"userInfo": {"groups": ["system:nodes"]}}})
    broken = compiled(matchConditions=[{"name": "n", "expression": "object.spec.replicas > 1"}])
    with pytest.raises(ConditionError):
        conditions_hold(broken, {"object": {"metadata": {"name": "x"}}, "oldObject": None, "request": {}})


def test_defaults_of_a_compiled_webhook() -> None:
    h = compiled()
    assert h.fail_closed and h.timeout == 10 and not h.reinvoke and h.calls_on_dry_run()
    assert not compiled(failurePolicy="Ignore").fail_closed
    assert compiled(reinvocationPolicy="IfNeeded").reinvoke


def review(response: dict[str, Any]) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).encode()


def test_reading_answers() -> None:
    ops = [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]
    patch = base64.b64encode(json.dumps(ops).encode()).decode()
    got = read_response(review({"uid": "u", "allowed": True, "patchType": "JSONPatch", "patch": patch,
                                "warnings": ["w"]}), "u", mutating=True)
    assert got.allowed and got.patch == ops and got.warnings == ["w"]
    bad = [
        (review({"uid": "other", "allowed": True}), 'expected response.uid="u", got "other"'),
        (json.dumps({"apiVersion": "v1", "kind": "Status"}).encode(), "expected webhook response of"),
        (review({"uid": "u", "allowed": True, "patch": patch}), "response.patch but not response.patchType"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
         "webhook response was absent"),
        (b"not json", "the response is not JSON"),
    ]
    for body, words in bad:
        with pytest.raises(CallError, match=re.escape(words)):
            read_response(body, "u", mutating=True)
    with pytest.raises(CallError, match=re.escape("validating webhook may not return response.patch")):
        read_response(review({"uid": "u", "allowed": True, "patchType": "JSONPatch", "patch": patch}), "u",
                      mutating=False)


def test_v1beta1_answers_are_read_leniently() -> None:
    assert compiled(admissionReviewVersions=["v1beta1"]).review_version == "admission.k8s.io/v1beta1"
    assert compiled(admissionReviewVersions=["v1beta1", "v1"]).review_version == "admission.k8s.io/v1"
    ops = [{"op": "remove", "path": "/spec"}]
    body = json.dumps({"response": {"allowed": True, "patch": base64.b64encode(json.dumps(ops).encode()).decode()}})
    got = read_response(body.encode(), "u", mutating=True, beta=True)
    assert got.allowed and got.patch == ops
    with pytest.raises(CallError, match="webhook response of"):
        read_response(body.encode(), "u", mutating=True)


def test_denials_read_as_upstream_words_them() -> None:
    err = denial("a.b.c", {"code": 403, "reason": "Forbidden", "message": "no"})
    assert (err.code, err.reason, err.message) == (403, "Forbidden", 'admission webhook "a.b.c" denied the request: no')
    low = denial("a.b.c", {"code": 200})
    assert low.code == 400 and low.message == 'admission webhook "a.b.c" denied the request without explanation'
    assert denial("a.b.c", {"reason": "Because"}).message.endswith("denied the request: Because")


def test_match_conditions_have_the_kubernetes_libraries() -> None:
    h = compiled(matchConditions=[{"name": "small-memory", "expression":
                                   "object.spec.containers.all(c, quantity(c.memory).isLessThan(quantity('1Gi')))"},
                                  {"name": "internal", "expression": "cidr('10.0.0.0/8').containsIP(object.spec.ip)"}])
    containers: list[dict[str, str]] = [{"memory": "512Mi"}]
    pod = {"spec": {"ip": "10.1.2.3", "containers": containers}}
    assert conditions_hold(h, {"object": pod, "oldObject": None, "request": {}})
    containers.append({"memory": "2Gi"})
    assert not conditions_hold(h, {"object": pod, "oldObject": None, "request": {}})
    with pytest.raises(ConditionError, match="match condition 'small-memory': quantities must match"):
        conditions_hold(h, {"object": {"spec": {"containers": [{"memory": "lots"}]}}, "oldObject": None,
                            "request": {}})
