"""Authorization: may this user do this verb on this resource (or path)?

Authorizers are plug-ins (:class:`Authorizer`) asked in order by :class:`Union`, as
kube-apiserver's ``--authorization-mode=Node,RBAC``: the first to allow or deny settles
it; one with no opinion passes the question on, adding its reason to the 403 if nobody
allows. ``system:masters`` is allowed before any authorizer runs, so the admin and the
control plane's own requests cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from bosun.security.identity import User


@dataclass(frozen=True, slots=True)
class Attributes:
    """What Kubernetes' authorizer.Attributes carry, filled from the request path."""

    user: User
    verb: str
    resource_request: bool = True
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    # fieldSelector requirements ``spec.nodeName=x`` style, for nodes listing their pods.
    field_selector: str = ""


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no-opinion"


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


ALLOW = Verdict(Decision.ALLOW)
NO_OPINION = Verdict(Decision.NO_OPINION)


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> Verdict: ...


class Union:
    """Ask each authorizer in turn; masters are allowed without asking anyone."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = list(authorizers)

    def authorize(self, attrs: Attributes) -> Verdict:
        if attrs.user.is_master:
            return ALLOW
        reasons: list[str] = []
        for a in self.authorizers:
            v = a.authorize(attrs)
            if v.decision is not Decision.NO_OPINION:
                return v
            if v.reason:
                reasons.append(v.reason)
        return Verdict(Decision.NO_OPINION, "\n".join(reasons))


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The text kube-apiserver's 403 carries, word for word (kubectl users grep for it)."""
    user = attrs.user.name
    if not attrs.resource_request:
        msg = f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        msg = f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {where}'
    if reason:
        msg = f"{msg}: {reason}"
    if not attrs.resource_request or not attrs.resource:
        return f"forbidden: {msg}"
    qualified = attrs.resource + (f".{attrs.api_group}" if attrs.api_group else "")
    if attrs.name:
        return f'{qualified} "{attrs.name}" is forbidden: {msg}'
    return f"{qualified} is forbidden: {msg}"
