"""Kubernetes' ValidatingAdmissionPolicy admission: CEL rules written as API objects.

Every write (any kind but the admission policies' own, which upstream exempts so that a bad
policy cannot lock itself in) is offered to each ValidatingAdmissionPolicyBinding whose policy
exists. A pair applies when the policy's ``matchConstraints`` and the binding's
``matchResources`` select the write (:mod:`bosun.api.admission.policymatch`) and every
``matchConditions`` expression is true; its ``validations`` are then evaluated with
``object``, ``oldObject``, ``request``, ``namespaceObject``, ``params`` and ``variables``.
A failed validation is acted on by the binding's ``validationActions``: Deny refuses the
write (``ValidatingAdmissionPolicy 'P' with binding 'B' denied request: MESSAGE``, with the
code of the validation's ``reason``, 422 by default), Warn adds a ``Warning`` header, Audit
logs it. An expression that cannot be evaluated (or params that cannot be found) follows the
policy's ``failurePolicy``: Fail denies, Ignore lets the write through.

CEL is :mod:`bosun.api.crd.cel`'s (the ``common-expression-language`` library, with
Kubernetes' extension libraries of :mod:`bosun.api.cellib`, and a runtime cost budget per
policy evaluation); the
``authorizer`` variable (:mod:`.policyauthz`) asks the server's authorizer. Expressions are
checked when a policy is written: one naming an undeclared variable is refused, fields absent
from the matched kinds' schemas are warned about in ``status.typeChecking``
(:mod:`.policytypes`). Not done as upstream: ``auditAnnotations`` are not evaluated (there is
no audit log), an expression's estimated cost is not checked when the policy is written, and
like the rest of the
validating phase the policies are not evaluated on dry-run writes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from bosun.api.admission.base import DELETE, Operation, Request
from bosun.api.admission.policyauthz import authorizer_functions, authorizer_variable
from bosun.api.admission.policymatch import Attributes, resources_match
from bosun.api.admission.policyset import Policies
from bosun.api.crd.cel import Budget, Environment, EvaluationError, evaluate
from bosun.api.errors import APIError
from bosun.api.registry import Resource
from bosun.api.validation.meta import selector_matches
from bosun.security.authz import Authorizer

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POLICY_GROUP = "admissionregistration.k8s.io"
_CODES = {"Unauthorized": 401, "Forbidden": 403, "RequestEntityTooLarge": 413, "Invalid": 422}


class AuthorizerSource(Protocol):
    """Holds the server's authorizer, once there is one (the certificate plugins' SignerAccess)."""

    authorizer: Authorizer | None


@dataclass(frozen=True, slots=True)
class Failure:
    """A pair's verdict against the write: why, and the Status reason a Deny answers with."""

    message: str
    reason: str = "Invalid"
    error: bool = False  # evaluation failed (failurePolicy decides), rather than a rule
    # The binding could not be applied at all (its params): with failurePolicy Fail the write
    # is refused whatever the binding's actions, as upstream does.
    configuration: bool = False


class ValidatingAdmissionPolicy:
    name = "ValidatingAdmissionPolicy"
    mutating = False

    def __init__(self, policies: Policies, authorizer: AuthorizerSource | None = None) -> None:
        self.policies = policies
        # Where the server's authorizer is found once access control exists (None: no authorizer).
        self.authorizer = authorizer

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res.group != POLICY_GROUP

    async def admit(self, req: Request) -> None:
        pairs = self.policies.pairs()
        if not pairs:
            return
        obj, old = (None, req.obj) if req.operation == DELETE else (req.obj, req.old)
        res = req.res
        attrs = Attributes(req.operation, res.group, res.version, res.plural, req.subresource or "",
                           res.namespaced, req.name,
                           tuple(v for v in self._versions(res) if v != res.version))
        namespace = self.policies.namespace(req.namespace) if res.namespaced else None
        # One conversion of the write to CEL for every policy (built at the first evaluation);
        # each pair's params and variables are read lazily.
        env = Environment({"object": obj, "oldObject": old, "request": _request(req), "namespaceObject": namespace},
                          {"params": None, "variables": {}})
        denied: APIError | None = None
        authorizing = False
        reading = self.policies.authorizing  # after pairs(), which keeps it
        for policy, binding in pairs:
            pspec, bspec = policy.get("spec") or {}, binding.get("spec") or {}
            if not resources_match(pspec.get("matchConstraints") or {}, attrs, obj, old, namespace,
                                   rules_needed=True):
                continue
            bmatch = bspec.get("matchResources")
            if isinstance(bmatch, dict) and not resources_match(bmatch, attrs, obj, old, namespace,
                                                                rules_needed=False):
                continue
            if reading and not authorizing and policy["metadata"]["name"] in reading:
                authorizing = True
                env.lazy["authorizer"] = authorizer_variable(req)
                env.add_functions(authorizer_functions(
                    self.authorizer.authorizer if self.authorizer is not None else None, req.user))
            failure = self._check(pspec, bspec, req, env)
            if failure is None or (failure.error and pspec.get("failurePolicy") == "Ignore"):
                continue
            pname, bname = policy["metadata"]["name"], binding["metadata"]["name"]
            actions = bspec.get("validationActions") or []
            if "Warn" in actions:
                req.warn(f"Validation failed for ValidatingAdmissionPolicy '{pname}' with binding '{bname}': "
                         f"{failure.message}")
            if "Audit" in actions:
                log.info("ValidatingAdmissionPolicy %s with binding %s: %s %s %s/%s: %s", pname, bname,
                         req.operation, res.plural, req.namespace or "", req.name, failure.message)
            if ("Deny" in actions or failure.configuration) and denied is None:
                denied = _denial(req, f"ValidatingAdmissionPolicy '{pname}' with binding '{bname}' denied request: "
                                      f"{failure.message}", failure.reason)
        if denied is not None:
            raise denied

    def _versions(self, res: Resource) -> list[str]:
        catalog = self.policies.catalog
        if catalog is None:
            return [res.version]
        return [r.version for r in catalog.resources() if r.group == res.group and r.plural == res.plural]

    def _check(self, pspec: Obj, bspec: Obj, req: Request, env: Environment) -> Failure | None:
        """The first failure of the pair against the write, over each of its params."""
        params, failure = self._params(pspec, bspec, req)
        if failure is not None:
            return failure
        for param in params:
            env.lazy["params"] = param
            failure = _evaluate(pspec, env)
            if failure is not None:
                return failure
        return None

    def _params(self, pspec: Obj, bspec: Obj, req: Request) -> tuple[list[Obj | None], Failure | None]:
        kind = pspec.get("paramKind")
        if not isinstance(kind, dict):
            return [None], None
        ref = bspec.get("paramRef")
        if not isinstance(ref, dict):
            return [], Failure("failed to configure binding: no paramRef is set for a policy with a paramKind",
                               error=True, configuration=True)
        api_version, kind_name = str(kind.get("apiVersion") or ""), str(kind.get("kind") or "")
        res = self.policies.resource_of(api_version, kind_name)
        if res is None:
            return [], Failure(f"failed to configure policy: failed to find resource referenced by paramKind: "
                               f"'{api_version}, Kind={kind_name}'", error=True, configuration=True)
        namespace: str | None = None
        if res.namespaced:
            namespace = str(ref.get("namespace") or req.namespace or "")
            if not namespace:
                return [], Failure("cannot use namespaced paramRef in policy binding that matches "
                                   "cluster-scoped resources", error=True, configuration=True)
        name = ref.get("name")
        found: list[Obj | None]
        if isinstance(name, str) and name:
            one = self.policies.get(res, namespace, name)
            found = [one] if one is not None else []
        else:
            selector = ref.get("selector") if isinstance(ref.get("selector"), dict) else {}
            found = [o for o in self.policies.list(res, namespace)
                     if selector_matches(selector, (o.get("metadata") or {}).get("labels") or {})]
        if not found and ref.get("parameterNotFoundAction", "Deny") == "Deny":
            return [], Failure("no params found for policy binding with `Deny` parameterNotFoundAction",
                               error=True, configuration=True)
        return found, None


def _evaluate(pspec: Obj, ctx: Environment) -> Failure | None:
    """The policy's variables, match conditions and validations, in that order, on ``ctx``."""
    variables: Obj = {}
    broken: dict[str, str] = {}
    ctx.lazy["variables"] = variables
    budget = Budget()

    def metered(expression: str) -> Any:
        refused = budget.charge(expression, ctx.lazy, ctx.fixed)
        if refused is not None:
            raise EvaluationError(refused)
        return evaluate(expression, ctx)

    for var in pspec.get("variables") or []:
        name, expression = str(var.get("name") or ""), str(var.get("expression") or "")
        try:
            variables[name] = metered(expression)
        except EvaluationError as exc:
            broken[name] = f"expression '{expression}' resulted in error: {exc}"

    def run(expression: str) -> Any:
        try:
            return metered(expression)
        except EvaluationError as exc:
            for name, why in broken.items():
                if re.search(rf"\bvariables\.{re.escape(name)}\b", expression):
                    raise EvaluationError(why) from exc
            raise EvaluationError(f"expression '{expression}' resulted in error: {exc}") from exc

    for cond in pspec.get("matchConditions") or []:
        expression = str(cond.get("expression") or "")
        try:
            matched = run(expression)
        except EvaluationError as exc:
            return Failure(f"failed to evaluate matchCondition '{cond.get('name')}': {exc}", error=True)
        if matched is not True:
            return None  # the write is not this policy's
    for v in pspec.get("validations") or []:
        expression = str(v.get("expression") or "")
        try:
            ok = run(expression)
        except EvaluationError as exc:
            return Failure(str(exc), error=True)
        if ok is True:
            continue
        if ok is not False:
            return Failure(f"expression '{expression}' resulted in error: must evaluate to a bool", error=True)
        return Failure(_message(v, ctx), str(v.get("reason") or "Invalid"))
    return None


def _message(validation: Obj, ctx: Environment) -> str:
    expression = validation.get("messageExpression")
    if isinstance(expression, str) and expression:
        try:
            text = evaluate(expression, ctx)
        except EvaluationError:
            text = None
        if isinstance(text, str) and text.strip() and "\n" not in text:
            return text.strip()
    message = validation.get("message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    return f"failed expression: {str(validation.get('expression') or '').strip()}"


def _request(req: Request) -> Obj:
    """The ``request`` variable: the AdmissionRequest's fields a policy may read."""
    res = req.res
    user: Obj = {"username": "", "groups": []}
    if req.user is not None:
        user = {"username": req.user.name, "uid": req.user.uid, "groups": list(req.user.groups),
                "extra": {k: list(v) for k, v in req.user.extra.items()}}
    kind = {"group": res.group, "version": res.version, "kind": res.kind}
    resource = {"group": res.group, "version": res.version, "resource": res.plural}
    return {"kind": kind, "resource": resource, "subResource": req.subresource or "",
            "requestKind": kind, "requestResource": resource, "requestSubResource": req.subresource or "",
            "name": req.name, "namespace": req.namespace or "", "operation": req.operation,
            "userInfo": user, "dryRun": req.dry_run}


def _denial(req: Request, message: str, reason: str) -> APIError:
    """Upstream's answer: ``admission.NewForbidden``'s message with the rule's reason and code."""
    res = req.res
    what = f"{res.plural}.{res.group}" if res.group else res.plural
    details: Obj = {"name": req.name, "kind": res.plural, "causes": [{"message": message}]}
    if res.group:
        details["group"] = res.group
    return APIError(_CODES.get(reason, 500), reason, f'{what} "{req.name}" is forbidden: {message}',
                    details=details)
