"""What CEL expressions refer to (bosun.api.celrefs), the type warnings of a policy
(bosun.api.admission.policytypes) and the authorizer library (bosun.api.admission.policyauthz),
each alone."""

from __future__ import annotations

import pytest

from bosun.api.admission.base import CREATE, Request
from bosun.api.admission.policyauthz import authorizer_functions, authorizer_variable, mentions_authorizer
from bosun.api.admission.policytypes import type_warnings
from bosun.api.catalog import BUILTIN
from bosun.api.celrefs import field_paths, undeclared
from bosun.api.crd.cel import Environment, evaluate
from bosun.api.registry import must_by_plural
from bosun.security.authz import ALLOW, NO_OPINION, Attributes, Verdict
from bosun.security.identity import User

DECLARED = {"object", "oldObject", "request"}


@pytest.mark.parametrize(("expression", "report"), [
    ("foo == 1", "ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')\n | foo == 1\n | ^"),
    ("object.x == 1 &&\n  limit > 2",
     "ERROR: <input>:2:3: undeclared reference to 'limit' (in container '')\n |   limit > 2\n | ..^"),
])
def test_undeclared_variables_are_reported_as_cel_go_does(expression: str, report: str) -> None:
    assert undeclared(expression, DECLARED) == report


@pytest.mark.parametrize("expression", [
    "object.spec.containers.all(c, c.image != '')",
    "object.spec.x.map(k, v, v)",
    "'foo bar' == request.name",
    "type(object) == map",
    "object.a.exists_one(x, x == 1)",
])
def test_declared_locals_strings_and_type_names_are_not_variables(expression: str) -> None:
    assert undeclared(expression, DECLARED) is None


def test_field_paths_stop_at_methods_and_skip_strings() -> None:
    paths = field_paths("object.spec.replicas > 0 && 'object.nope' != '' && object.spec.containers.all(c, true)"
                        " && has(oldObject.metadata.labels)", ("object", "oldObject"))
    assert [(p.root, [f for f, _ in p.fields]) for p in paths] == [
        ("object", ["spec", "replicas"]), ("object", ["spec", "containers"]), ("oldObject", ["metadata", "labels"])]


def test_type_warnings_name_the_kind_and_the_field() -> None:
    spec = {"matchConstraints": {"resourceRules": [
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments", "replicasets"]},
        {"apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]},
        "validations": [{"expression": "object.spec.replicas > 0"},
                        {"expression": "object.spec.template.spec.nodeNam == ''"}]}
    warnings = type_warnings(spec, BUILTIN)
    assert [w["fieldRef"] for w in warnings] == ["spec.validations[1].expression"]
    assert warnings[0]["warning"].split("\n")[0] == (
        "apps/v1, Kind=Deployment: ERROR: <input>:1:26: undefined field 'nodeNam'")
    assert "apps/v1, Kind=ReplicaSet: ERROR: <input>:1:26: undefined field 'nodeNam'" in warnings[0]["warning"]


class Recorder:
    """An authorizer that allows what ``allowed`` lists (verb, resource) and records every question."""

    def __init__(self, allowed: set[tuple[str, str]]) -> None:
        self.allowed = allowed
        self.asked: list[Attributes] = []

    def authorize(self, attrs: Attributes) -> Verdict:
        self.asked.append(attrs)
        return ALLOW if (attrs.verb, attrs.resource or attrs.path) in self.allowed else NO_OPINION


def test_authorizer_library_asks_about_the_writer() -> None:
    deployments = must_by_plural("apps", "v1", "deployments")
    req = Request(CREATE, deployments, "ns", "web", {}, user=User("alice", ("devs",)))
    authz = Recorder({("create", "deployments"), ("get", "/healthz")})
    env = Environment({}, {"authorizer": authorizer_variable(req)})
    env.add_functions(authorizer_functions(authz, req.user))
    assert evaluate("authorizer.requestResource.check('create').allowed()", env) is True
    assert authz.asked[-1] == Attributes(req.user, "create", True, "apps", "v1", "deployments", "", "ns", "web")
    assert evaluate("authorizer.requestResource.check('delete').allowed()", env) is False
    assert evaluate("authorizer.group('').resource('pods').namespace('x').check('list').reason()", env) == ""
    assert authz.asked[-1].resource == "pods" and authz.asked[-1].namespace == "x"
    assert evaluate("authorizer.path('/healthz').check('get').allowed()", env) is True
    assert evaluate("authorizer.serviceAccount('ns', 'sa').group('apps').resource('deployments')"
                    ".check('create').errored()", env) is False
    assert authz.asked[-1].user.name == "system:serviceaccount:ns:sa"


def test_mentions_authorizer() -> None:
    assert mentions_authorizer({"validations": [{"expression": "true", "messageExpression": "authorizer.x"}]})
    assert not mentions_authorizer({"validations": [{"expression": "object.authorized"}]})
