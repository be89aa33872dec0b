"""The ``authorizer`` variable of ValidatingAdmissionPolicy expressions: upstream's CEL
authorizer library, answered by the server's authorizer (RBAC and the node authorizer).

    authorizer.group('apps').resource('deployments').namespace('ns').name('x').check('update').allowed()
    authorizer.requestResource.subresource('scale').check('update').reason()
    authorizer.path('/healthz').check('get').allowed()
    authorizer.serviceAccount('ns', 'builder').group('').resource('pods').check('create').allowed()

As CEL values the checks are maps (the library has no object types) that the functions here
extend; ``check`` asks the authorizer about the request's user (or the service account
named), ``allowed``/``reason``/``errored``/``error`` read its decision. The functions are
registered only on writes whose policies name ``authorizer``. Left out: upstream's
``fieldSelector``/``labelSelector`` on a resource check (beta in 1.32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bosun.api.admission.base import Obj, Request
from bosun.security.authz import Attributes, Authorizer, Decision
from bosun.security.identity import User

# A map's part that says what it is, and (for a service account's checks) who is asked about.
_KIND, _AS = "_kind", "_as"
SERVER = User("system:apiserver", ("system:masters",))


def mentions_authorizer(spec: Obj) -> bool:
    """Whether any expression of a policy may read ``authorizer`` (a cheap text scan)."""
    for section, fields in (("validations", ("expression", "messageExpression")), ("variables", ("expression",)),
                            ("matchConditions", ("expression",)), ("auditAnnotations", ("valueExpression",))):
        for item in spec.get(section) or ():
            if isinstance(item, dict) and any("authorizer" in str(item.get(f) or "") for f in fields):
                return True
    return False


def authorizer_variable(req: Request) -> Obj:
    """The ``authorizer`` value of a request, ``requestResource`` being the check of what it writes."""
    res = req.res
    return {_KIND: "authorizer", _AS: [], "requestResource": {
        _KIND: "resource", _AS: [], "group": res.group, "version": res.version, "resource": res.plural,
        "subresource": req.subresource or "", "namespace": req.namespace or "", "name": req.name}}


def authorizer_functions(authorizer: Authorizer | None, user: User | None) -> dict[str, Callable[..., Any]]:
    """The library's functions for one request, asking ``authorizer`` about ``user``."""

    def who(value: Obj) -> User:
        account = value.get(_AS) or []
        if account:
            ns, name = account
            groups = ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated")
            return User(f"system:serviceaccount:{ns}:{name}", groups)
        return user or SERVER

    def expect(value: Any, *kinds: str) -> Obj:
        if not isinstance(value, dict) or value.get(_KIND) not in kinds:
            raise ValueError(f"no such overload: expected {' or '.join(kinds)} check")
        return value

    def with_field(kinds: tuple[str, ...], field: str, kind: str | None = None) -> Callable[[Any, Any], Obj]:
        def set_field(value: Any, text: Any) -> Obj:
            base = expect(value, *kinds)
            return {**base, field: str(text), _KIND: kind or base[_KIND]}
        return set_field

    def service_account(value: Any, namespace: Any, name: Any) -> Obj:
        expect(value, "authorizer")
        return {_KIND: "authorizer", _AS: [str(namespace), str(name)]}

    def check(value: Any, verb: Any) -> Obj:
        target = expect(value, "resource", "path")
        asked = who(target)
        if asked.is_master:
            return {_KIND: "decision", "decision": "allow", "reason": ""}
        if target[_KIND] == "path":
            attrs = Attributes(asked, str(verb), False, path=str(target.get("path") or ""))
        else:
            attrs = Attributes(asked, str(verb), True, str(target.get("group") or ""),
                               str(target.get("version") or "*"), str(target.get("resource") or ""),
                               str(target.get("subresource") or ""), str(target.get("namespace") or ""),
                               str(target.get("name") or ""))
        if authorizer is None:
            return {_KIND: "decision", "decision": "noopinion", "reason": "no authorizer"}
        verdict = authorizer.authorize(attrs)
        decision = {Decision.ALLOW: "allow", Decision.DENY: "deny"}.get(verdict.decision, "noopinion")
        return {_KIND: "decision", "decision": decision, "reason": verdict.reason}

    def decision(field: str) -> Callable[[Any], Any]:
        def read(value: Any) -> Any:
            d = expect(value, "decision")
            return d["decision"] == "allow" if field == "allowed" else str(d.get(field) or "")
        return read

    return {
        "group": with_field(("authorizer",), "group", "group"),
        "resource": with_field(("group",), "resource", "resource"),
        "subresource": with_field(("resource",), "subresource"),
        "namespace": with_field(("resource",), "namespace"),
        "name": with_field(("resource",), "name"),
        "path": with_field(("authorizer",), "path", "path"),
        "serviceAccount": service_account,
        "check": check,
        "allowed": decision("allowed"),
        "reason": decision("reason"),
        "errored": lambda value: expect(value, "decision") and False,
        "error": lambda value: expect(value, "decision") and "",
    }
