"""ValidatingAdmissionPolicy and its Binding through real kubectl (v1.32) on a real server:
policies are defaulted, validated (a CEL expression that does not compile is a 422 naming its
field) and enforced on writes (Deny with kubectl printing the policy's message, Warn as a
kubectl warning, matchConditions, params from a ConfigMap, variables, request.userInfo, the
``authorizer`` asking RBAC about the writer), and deleting the binding lifts the rule; an
expression naming an undeclared variable is refused, one reading a field the matched kind
lacks is stored with a warning in ``status.typeChecking``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer, served
from tests.e2e.helpers import Kubectl, policy_namespace, wait_until

from bosun.client.kubeconfig import write_kubeconfig
from bosun.security.tokens import create_user_token

POLICY_NAME = "max-replicas.example.com"


def policy(name: str, validations: list[dict[str, Any]], **spec: Any) -> str:
    doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
           "metadata": {"name": name},
           "spec": {"matchConstraints": {"resourceRules": [{
               "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
               "resources": ["deployments"]}]},
               "validations": validations, **spec}}
    return yaml.safe_dump(doc)


def binding(name: str, policy_name: str, actions: list[str], namespace: str, **spec: Any) -> str:
    doc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
           "metadata": {"name": name},
           "spec": {"policyName": policy_name, "validationActions": actions,
                    "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name":
                                                                             namespace}}},
                    **spec}}
    return yaml.safe_dump(doc)


def deployment(name: str, replicas: int, labels: dict[str, str] | None = None) -> str:
    doc = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "labels": labels or {}},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    return yaml.safe_dump(doc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of this module's own: policies are cluster-wide."""
    yield from served(tmp_path_factory.mktemp("vap-server"))


@pytest.fixture
def kubectl(server: RunningServer, namespace: str, tmp_path: Path) -> Iterator[Kubectl]:
    with policy_namespace(server.kubeconfig, namespace, str(tmp_path)) as k:
        yield k


def refused_until(kubectl: Kubectl, args: tuple[str, ...], stdin: str, text: str) -> str:
    """Apply until the server refuses with ``text`` (policies reach admission through the
    watch cache, a moment after they are written); kubectl's error output."""
    out: list[str] = []

    def refused() -> bool:
        r = kubectl(*args, stdin=stdin)
        out[:] = [r.stderr]
        if r.returncode == 0:
            kubectl("delete", "-f", "-", "--wait=false", stdin=stdin)
        return r.returncode != 0 and text in r.stderr
    wait_until(refused, within=20, what=f"the write refused with {text!r}")
    return out[0]


def test_policy_is_defaulted_and_observed(kubectl: Kubectl, namespace: str) -> None:
    made = kubectl("apply", "-f", "-", stdin=policy(POLICY_NAME, [{"expression": "object.spec.replicas <= 5"}]))
    assert made.returncode == 0, made.stderr
    got = json.loads(kubectl("get", "validatingadmissionpolicy", POLICY_NAME, "-o", "json").stdout)
    spec = got["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["matchPolicy"] == "Equivalent"
    assert spec["matchConstraints"]["namespaceSelector"] == {} and spec["matchConstraints"]["objectSelector"] == {}
    assert spec["matchConstraints"]["resourceRules"][0]["scope"] == "*"

    def first_observed() -> bool:  # written a moment after, as upstream's type-checking controller does
        obj = json.loads(kubectl("get", "validatingadmissionpolicy", POLICY_NAME, "-o", "json").stdout)
        return bool((obj.get("status") or {}).get("observedGeneration") == 1)
    wait_until(first_observed, within=20, what="status.observedGeneration 1")
    changed = kubectl("patch", "validatingadmissionpolicy", POLICY_NAME, "--type=merge", "-p",
                      json.dumps({"spec": {"failurePolicy": "Ignore"}}))
    assert changed.returncode == 0, changed.stderr

    def observed() -> bool:
        obj = json.loads(kubectl("get", "validatingadmissionpolicy", POLICY_NAME, "-o", "json").stdout)
        return bool(obj["metadata"]["generation"] == 2 and obj["status"]["observedGeneration"] == 2)
    wait_until(observed, within=20, what="status.observedGeneration 2")


def test_deny_prints_the_message_and_deleting_the_binding_lifts_it(kubectl: Kubectl, namespace: str) -> None:
    made = kubectl("apply", "-f", "-", stdin=policy(POLICY_NAME, [
        {"expression": "object.spec.replicas <= 5", "message": "no more than 5 replicas"}]))
    assert made.returncode == 0, made.stderr
    made = kubectl("apply", "-f", "-", stdin=binding("max-replicas-deny", POLICY_NAME, ["Deny"], namespace))
    assert made.returncode == 0, made.stderr
    err = refused_until(kubectl, ("-n", namespace, "apply", "-f", "-"), deployment("big", 7),
                        "no more than 5 replicas")
    # kubectl prints a 422 by its causes, as it does against Kubernetes (its documentation
    # shows this very form).
    assert ('The deployments "big" is invalid: : ValidatingAdmissionPolicy \'max-replicas.example.com\' '
            "with binding 'max-replicas-deny' denied request: no more than 5 replicas") in err
    # The Status itself: 422 Invalid (the validation's default reason), the message as a cause.
    raw = kubectl("-n", namespace, "create", "-f", "-", "-o", "json", "-v=8", stdin=deployment("big", 7))
    assert "422 Unprocessable Entity" in raw.stderr
    # A server-side dry run passes the validating admission too, as upstream.
    dry = kubectl("-n", namespace, "apply", "--dry-run=server", "-f", "-", stdin=deployment("big", 7))
    assert dry.returncode != 0 and "no more than 5 replicas" in dry.stderr, dry.stderr
    small = kubectl("-n", namespace, "apply", "-f", "-", stdin=deployment("small", 3))
    assert small.returncode == 0, small.stderr
    # An update is checked too (scale goes through the scale subresource, which the rule
    # does not name; an edit of the object does).
    bigger = kubectl("-n", namespace, "patch", "deployment", "small", "-p", '{"spec":{"replicas":9}}')
    assert bigger.returncode != 0 and "no more than 5 replicas" in bigger.stderr
    # Another namespace is not selected by the binding.
    other = f"{namespace}-other"
    assert kubectl("create", "namespace", other).returncode == 0
    try:
        elsewhere = kubectl("-n", other, "apply", "-f", "-", stdin=deployment("big", 7))
        assert elsewhere.returncode == 0, elsewhere.stderr
    finally:
        kubectl("delete", "namespace", other, "--wait=false")
    gone = kubectl("delete", "validatingadmissionpolicybinding", "max-replicas-deny")
    assert gone.returncode == 0, gone.stderr

    def allowed() -> bool:
        return kubectl("-n", namespace, "apply", "-f", "-", stdin=deployment("big", 7)).returncode == 0
    wait_until(allowed, within=20, what="the deployment accepted once the binding is gone")


def test_warn_action_is_a_kubectl_warning(kubectl: Kubectl, namespace: str) -> None:
    assert kubectl("apply", "-f", "-", stdin=policy("warn.example.com", [
        {"expression": "object.spec.replicas <= 5", "messageExpression":
         "'replicas is ' + string(object.spec.replicas) + ', more than 5'"}])).returncode == 0
    assert kubectl("apply", "-f", "-", stdin=binding("warn", "warn.example.com", ["Warn"], namespace)).returncode == 0
    seen: list[str] = []

    def warned() -> bool:
        r = kubectl("-n", namespace, "apply", "-f", "-", stdin=deployment("warned", 6))
        assert r.returncode == 0, r.stderr  # a warning never refuses
        seen[:] = [r.stderr]
        return "Warning:" in r.stderr
    wait_until(warned, within=20, what="a kubectl warning")
    assert ("Warning: Validation failed for ValidatingAdmissionPolicy 'warn.example.com' with binding 'warn': "
            "replicas is 6, more than 5") in seen[0]
    quiet = kubectl("-n", namespace, "apply", "-f", "-", stdin=deployment("quiet", 2))
    assert quiet.returncode == 0 and "Warning" not in quiet.stderr


def test_match_conditions_variables_and_user_info(kubectl: Kubectl, namespace: str) -> None:
    """A deployment labelled ``exempt: "true"`` is skipped by the match condition; the
    variable holds the replicas; request.userInfo is the admin's."""
    assert kubectl("apply", "-f", "-", stdin=policy("conditions.example.com", [
        {"expression": "variables.replicas <= 2 || request.userInfo.username == 'nobody'",
         "message": "too many", "reason": "Forbidden"}],
        matchConditions=[{"name": "not-exempt",
                          "expression": "!has(object.metadata.labels) || "
                                        "!('exempt' in object.metadata.labels)"}],
        variables=[{"name": "replicas", "expression": "object.spec.replicas"}])).returncode == 0
    assert kubectl("apply", "-f", "-", stdin=binding("conditions", "conditions.example.com", ["Deny"],
                                                     namespace)).returncode == 0
    refused_until(kubectl, ("-n", namespace, "create", "-f", "-"), deployment("three", 3), "too many")
    r = kubectl("-n", namespace, "create", "-f", "-", "-v=6", stdin=deployment("three", 3))
    assert "403 Forbidden" in r.stderr  # the validation's reason decides the code
    exempt = kubectl("-n", namespace, "create", "-f", "-", stdin=deployment("exempt", 3, {"exempt": "true"}))
    assert exempt.returncode == 0, exempt.stderr


def test_params_from_a_configmap(kubectl: Kubectl, namespace: str) -> None:
    limits = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "limits", "namespace": namespace},
                             "data": {"maxReplicas": "4"}})
    assert kubectl("apply", "-f", "-", stdin=limits).returncode == 0
    assert kubectl("apply", "-f", "-", stdin=policy("params.example.com", [
        {"expression": "object.spec.replicas <= int(params.data.maxReplicas)",
         "messageExpression": "'at most ' + params.data.maxReplicas + ' replicas'"}],
        paramKind={"apiVersion": "v1", "kind": "ConfigMap"})).returncode == 0
    assert kubectl("apply", "-f", "-", stdin=binding(
        "params", "params.example.com", ["Deny"], namespace,
        paramRef={"name": "limits", "namespace": namespace, "parameterNotFoundAction": "Deny"})).returncode == 0
    refused_until(kubectl, ("-n", namespace, "create", "-f", "-"), deployment("five", 5), "at most 4 replicas")
    rows = [line.split() for line in kubectl("get", "validatingadmissionpolicies,validatingadmissionpolicybindings")
            .stdout.splitlines()]
    assert ["validatingadmissionpolicy.admissionregistration.k8s.io/params.example.com", "1", "v1/ConfigMap"] \
        in [r[:3] for r in rows], rows
    assert ["validatingadmissionpolicybinding.admissionregistration.k8s.io/params", "params.example.com",
            f"{namespace}/limits"] in [r[:3] for r in rows], rows
    four = kubectl("-n", namespace, "create", "-f", "-", stdin=deployment("four", 4))
    assert four.returncode == 0, four.stderr
    # The params are read when the write comes: raising the limit lets five through.
    assert kubectl("-n", namespace, "patch", "configmap", "limits", "-p",
                   '{"data":{"maxReplicas":"5"}}').returncode == 0
    wait_until(lambda: kubectl("-n", namespace, "create", "-f", "-", stdin=deployment("five", 5)).returncode == 0,
               within=20, what="five replicas accepted")
    # No params: parameterNotFoundAction Deny refuses.
    assert kubectl("-n", namespace, "delete", "configmap", "limits").returncode == 0
    refused_until(kubectl, ("-n", namespace, "create", "-f", "-"), deployment("one", 1),
                  "no params found for policy binding with `Deny` parameterNotFoundAction")


def test_failure_policy_decides_on_evaluation_errors(kubectl: Kubectl, namespace: str) -> None:
    assert kubectl("apply", "-f", "-", stdin=policy("broken.example.com", [
        {"expression": "object.spec.nosuchfield == 1"}])).returncode == 0
    assert kubectl("apply", "-f", "-", stdin=binding("broken", "broken.example.com", ["Deny"],
                                                     namespace)).returncode == 0
    refused_until(kubectl, ("-n", namespace, "create", "-f", "-"), deployment("a", 1),
                  "expression 'object.spec.nosuchfield == 1' resulted in error: no such key: nosuchfield")
    assert kubectl("patch", "validatingadmissionpolicy", "broken.example.com", "--type=merge", "-p",
                   '{"spec":{"failurePolicy":"Ignore"}}').returncode == 0
    wait_until(lambda: kubectl("-n", namespace, "create", "-f", "-", stdin=deployment("a", 1)).returncode == 0,
               within=20, what="the write let through with failurePolicy Ignore")


@pytest.mark.parametrize(("change", "message"), [
    ({"validations": [{"expression": "object.spec.replicas <="}]},
     'spec.validations[0].expression: Invalid value: "object.spec.replicas <=": compilation failed: '
     "ERROR: <input>:1:24: Syntax error"),
    ({"validations": [{"message": "no expression"}]}, "spec.validations[0].expression: Required value"),
    ({"validations": []}, "spec.validations: Required value: validations or auditAnnotations must contain at "
                          "least one item"),
    ({"failurePolicy": "Sometimes"},
     'spec.failurePolicy: Unsupported value: "Sometimes": supported values: "Fail", "Ignore"'),
    ({"matchConditions": [{"name": "m", "expression": "(("}]},
     'spec.matchConditions[0].expression: Invalid value: "((": compilation failed'),
    ({"variables": [{"name": "not-an-identifier", "expression": "1"}]},
     'spec.variables[0].name: Invalid value: "not-an-identifier": name is not a valid CEL identifier'),
    ({"validations": [{"expression": "object.spec.replicas < limit"}]},
     'spec.validations[0].expression: Invalid value: "object.spec.replicas < limit": compilation failed: '
     "ERROR: <input>:1:24: undeclared reference to 'limit' (in container '')\n | object.spec.replicas < limit\n"
     " | .......................^"),
    ({"validations": [{"expression": "object.spec.replicas < params.max"}]},  # params need a paramKind
     "compilation failed: ERROR: <input>:1:24: undeclared reference to 'params' (in container '')"),
])
def test_bad_policies_are_refused_naming_the_field(kubectl: Kubectl, change: dict[str, Any], message: str) -> None:
    doc = yaml.safe_load(policy("bad.example.com", [{"expression": "true"}]))
    doc["spec"].update(change)
    r = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))
    assert r.returncode != 0
    assert 'The ValidatingAdmissionPolicy "bad.example.com" is invalid' in r.stderr and message in r.stderr, r.stderr


def test_bad_bindings_are_refused_naming_the_field(kubectl: Kubectl, namespace: str) -> None:
    r = kubectl("apply", "-f", "-", stdin=binding("bad", POLICY_NAME, ["Deny", "Warn"], namespace))
    assert 'spec.validationActions: Invalid value: []string{"Deny", "Warn"}: cannot use both Deny and Warn ' \
           "together" in r.stderr, r.stderr
    r = kubectl("apply", "-f", "-", stdin=binding("bad", "", [], namespace))
    assert "spec.policyName: Required value" in r.stderr and \
        "spec.validationActions: Required value: at least one validation action is required" in r.stderr, r.stderr


def test_updates_and_deletes_see_the_user_and_the_old_object(kubectl: Kubectl, namespace: str) -> None:
    """A policy on UPDATE and DELETE of labelled ConfigMaps: the message names the operation, the
    user who asked and the old object's data (on DELETE ``object`` is null)."""
    guarded = yaml.safe_dump({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                              "metadata": {"name": "guarded.example.com"},
                              "spec": {"matchConstraints": {
                                  "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                     "operations": ["UPDATE", "DELETE"], "resources": ["configmaps"]}],
                                  "objectSelector": {"matchLabels": {"guarded": "yes"}}},
                                  "validations": [{"expression": "false", "messageExpression":
                                                   "request.operation + ' by ' + request.userInfo.username + "
                                                   "' of ' + oldObject.data.v + ', new object: ' + "
                                                   "(object == null ? 'none' : object.data.v)"}]}})
    assert kubectl("apply", "-f", "-", stdin=guarded).returncode == 0
    assert kubectl("apply", "-f", "-", stdin=binding("guarded", "guarded.example.com", ["Deny"],
                                                     namespace)).returncode == 0
    cm = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "g", "namespace": namespace, "labels": {"guarded": "yes"}},
                         "data": {"v": "one"}})
    assert kubectl("create", "-f", "-", stdin=cm).returncode == 0  # CREATE is not matched
    whoami = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.returncode == 0 and whoami.stdout, whoami.stderr
    # Waited for with dry runs (which admission sees too), so that no real write gets in first.
    refused_until(kubectl, ("-n", namespace, "patch", "--dry-run=server", "configmap", "g", "-p",
                            '{"data":{"v":"two"}}'), "", "UPDATE by")
    patched = kubectl("-n", namespace, "patch", "configmap", "g", "-p", '{"data":{"v":"two"}}')
    assert patched.returncode != 0
    assert f"UPDATE by {whoami.stdout} of one, new object: two" in patched.stderr, patched.stderr
    gone = kubectl("-n", namespace, "delete", "configmap", "g")
    assert gone.returncode != 0 and f"DELETE by {whoami.stdout} of one, new object: none" in gone.stderr, gone.stderr


def test_type_checking_warns_in_the_status(kubectl: Kubectl, namespace: str) -> None:
    """A field the matched kind lacks is not refused: upstream's warning, in status.typeChecking."""
    typo = "object.spec.replicass > 0 && has(object.metadata.labels)"
    made = kubectl("apply", "-f", "-", stdin=policy("typo.example.com", [
        {"expression": typo}, {"expression": "object.spec.replicas >= 0",
                               "messageExpression": "'replicas: ' + string(oldObject.spek.replicas)"}]))
    assert made.returncode == 0, made.stderr
    made = kubectl("apply", "-f", "-", stdin=policy("fine.example.com", [{"expression": "object.spec.replicas > 0"}]))
    assert made.returncode == 0, made.stderr

    def status(name: str) -> dict[str, Any]:
        got = json.loads(kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout)
        return dict(got.get("status") or {})
    wait_until(lambda: "observedGeneration" in status("typo.example.com"), within=20, what="the policy's status")
    assert status("typo.example.com")["typeChecking"] == {"expressionWarnings": [
        {"fieldRef": "spec.validations[0].expression",
         "warning": "apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field 'replicass'\n"
                    f" | {typo}\n | ...........^"},
        {"fieldRef": "spec.validations[1].messageExpression",
         "warning": "apps/v1, Kind=Deployment: ERROR: <input>:1:32: undefined field 'spek'\n"
                    " | 'replicas: ' + string(oldObject.spek.replicas)\n | " + "." * 31 + "^"}]}
    wait_until(lambda: "observedGeneration" in status("fine.example.com"), within=20, what="the policy's status")
    assert status("fine.example.com")["typeChecking"] == {}


def test_authorizer_asks_rbac_about_the_writer(kubectl: Kubectl, server: RunningServer, namespace: str,
                                               tmp_path: Path) -> None:
    """``authorizer`` and ``authorizer.requestResource``: only a writer who may also delete the
    Deployment may create it; ``reason()`` says why RBAC allowed, ``path()`` checks a URL."""
    token = create_user_token(server.data_dir, f"writer-{namespace}", ["writers"])
    write_kubeconfig(str(tmp_path / "writer"), server=server.url, ca_pem=Path(server.ca_path).read_bytes(),
                     token=token)
    writer = Kubectl(str(tmp_path / "writer"), str(tmp_path))
    user = f"writer-{namespace}"
    assert kubectl("-n", namespace, "create", "role", "create-deploy", "--verb=create,get",
                   "--resource=deployments.apps").returncode == 0
    assert kubectl("-n", namespace, "create", "rolebinding", "writer-create", "--role=create-deploy",
                   f"--user={user}").returncode == 0
    checks = [
        {"expression": "authorizer.requestResource.check('delete').allowed()",
         "messageExpression": "'may not delete deployments/' + request.name + ' in ' + request.namespace"},
        {"expression": "authorizer.group('apps').resource('deployments').namespace(request.namespace)"
                       ".check('create').allowed()"},
        {"expression": "authorizer.path('/healthz').check('get').allowed()"},
        {"expression": "!authorizer.serviceAccount(request.namespace, 'default').group('apps')"
                       ".resource('deployments').check('create').allowed()"},
    ]
    assert kubectl("apply", "-f", "-", stdin=policy("authz.example.com", checks)).returncode == 0
    assert kubectl("apply", "-f", "-", stdin=binding("authz", "authz.example.com", ["Deny"], namespace)).returncode == 0
    refused = refused_until(writer, ("-n", namespace, "create", "-f", "-"), deployment("web", 1),
                            "may not delete deployments/web in " + namespace)
    assert "ValidatingAdmissionPolicy 'authz.example.com' with binding 'authz' denied request" in refused
    assert kubectl("-n", namespace, "create", "role", "delete-deploy", "--verb=delete",
                   "--resource=deployments.apps").returncode == 0
    assert kubectl("-n", namespace, "create", "rolebinding", "writer-delete", "--role=delete-deploy",
                   f"--user={user}").returncode == 0
    wait_until(lambda: writer("-n", namespace, "create", "-f", "-", stdin=deployment("web", 1)).returncode == 0,
               within=20, what="the writer's create let through once RBAC lets it delete")
    # The admin (system:masters) is allowed everything, as upstream's authorizer answers.
    made = kubectl("-n", namespace, "create", "-f", "-", stdin=deployment("admin-made", 1))
    assert made.returncode == 0, made.stderr
