"""matchConditions are checked by one rule in a ValidatingWebhookConfiguration and in a
ValidatingAdmissionPolicy (upstream's validateMatchConditions serves both): a required,
qualified name unique in the list, a required expression that compiles and names only the
variables of its kind (``params`` is a policy's, with a paramKind), at most 64 items."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from tests.unit.helpers import must_by_kind

from bosun.api.defaults import apply_defaults
from bosun.api.validation import validate_unchecked

Obj = dict[str, Any]
BAD_NAME = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def errors(obj: Obj) -> list[str]:
    r = must_by_kind(obj["apiVersion"], obj["kind"])
    obj = copy.deepcopy(obj)
    apply_defaults(r, obj)
    return [e.detail() for e in validate_unchecked(r, obj)]


def webhook(conditions: list[Obj]) -> tuple[Obj, str]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "w"},
            "webhooks": [{"name": "a.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                          "clientConfig": {"url": "https://hook.example.com/"},
                          "matchConditions": conditions}]}, "webhooks[0].matchConditions"


def policy(conditions: list[Obj]) -> tuple[Obj, str]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "p"},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                             "operations": ["CREATE"], "resources": ["deployments"]}]},
                     "validations": [{"expression": "true"}], "matchConditions": conditions}}, "spec.matchConditions"


KINDS = pytest.mark.parametrize("make", [webhook, policy], ids=["webhook", "policy"])
Make = Callable[[list[Obj]], tuple[Obj, str]]


@KINDS
def test_good_conditions_pass(make: Make) -> None:
    obj, _ = make([{"name": "not-nodes", "expression": '!("system:nodes" in request.userInfo.groups)'},
                   {"name": "example.com/small", "expression": "object.spec.replicas < 3"}])
    assert errors(obj) == []


@KINDS
def test_names_are_required_qualified_and_unique(make: Make) -> None:
    obj, at = make([{"name": "", "expression": "true"}, {"name": "Bad Name", "expression": "true"},
                    {"name": "Bad Name", "expression": "true"}, {"name": "a", "expression": "true"},
                    {"name": "a", "expression": "true"}])
    assert errors(obj) == [f"{at}[0].name: Required value",
                           f'{at}[1].name: Invalid value: "Bad Name": {BAD_NAME}',
                           f'{at}[2].name: Invalid value: "Bad Name": {BAD_NAME}',  # as upstream: both
                           f'{at}[2].name: Duplicate value: "Bad Name"',
                           f'{at}[4].name: Duplicate value: "a"']


@KINDS
def test_expressions_are_required_and_compile_with_their_kinds_variables(make: Make) -> None:
    obj, at = make([{"name": "a", "expression": ""}, {"name": "b", "expression": "(("},
                    {"name": "c", "expression": "params.x"}])
    found = errors(obj)
    assert found[0] == f"{at}[0].expression: Required value"
    assert found[1].startswith(f'{at}[1].expression: Invalid value: "((": compilation failed: ERROR: <input>:1:3: '
                               "Syntax error")
    assert found[2].startswith(f'{at}[2].expression: Invalid value: "params.x": compilation failed: ERROR: '
                               "<input>:1:1: undeclared reference to 'params'")
    assert len(found) == 3


@KINDS
def test_at_most_64(make: Make) -> None:
    obj, at = make([{"name": f"c{i}", "expression": "true"} for i in range(64)])
    assert errors(obj) == []
    obj, at = make([{"name": f"c{i}", "expression": "true"} for i in range(65)])
    assert errors(obj) == [f"{at}: Invalid value: 65: must have at most 64 items"]


def test_a_policy_with_a_param_kind_may_name_params() -> None:
    obj, _ = policy([{"name": "a", "expression": "params.x == 1"}])
    obj["spec"]["paramKind"] = {"apiVersion": "v1", "kind": "ConfigMap"}
    assert errors(obj) == []
