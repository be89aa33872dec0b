"""RBAC binding subjects: who a subject names, as upstream's authorizer reads it."""

from __future__ import annotations

from bosun.security.authz.rbac import subject_keys


def test_service_account_subjects_default_to_the_binding_namespace() -> None:
    sa = {"kind": "ServiceAccount", "name": "greeter"}
    assert subject_keys(sa, "ops") == "u:system:serviceaccount:ops:greeter"
    assert subject_keys({**sa, "namespace": "other"}, "ops") == "u:system:serviceaccount:other:greeter"
    assert subject_keys({"kind": "User", "name": "jane"}, "ops") == "u:jane"
    assert subject_keys({"kind": "Group", "name": "devs"}) == "g:devs"
    assert subject_keys({"kind": "Robot", "name": "x"}) is None
