"""Who a request comes from: the user authentication settles on, as Kubernetes' user.Info.

Authorization only ever sees this (never the token), so every credential scheme (admin
token, user tokens, node credentials, join tokens) maps onto the same names and groups
that RBAC bindings name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
NODES = "system:nodes"
BOOTSTRAPPERS = "system:bootstrappers"
NODE_PREFIX = "system:node:"
BOOTSTRAP_PREFIX = "system:bootstrap:"

ADMIN_NAME = "bosun-admin"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_master(self) -> bool:
        return MASTERS in self.groups

    @property
    def node_name(self) -> str | None:
        """The node a ``system:node:<name>`` user in group ``system:nodes`` speaks for."""
        if NODES in self.groups and self.name.startswith(NODE_PREFIX):
            return self.name[len(NODE_PREFIX):] or None
        return None

    def info(self) -> dict[str, object]:
        """The UserInfo wire form (SelfSubjectReview, SubjectAccessReview)."""
        out: dict[str, object] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = self.extra
        return out


def authenticated(name: str, *groups: str, uid: str = "") -> User:
    """A user as the authenticator returns it: every authenticated user is in
    ``system:authenticated`` (what the default discovery/basic-user bindings name)."""
    gs = tuple(dict.fromkeys([*groups, AUTHENTICATED]))
    return User(name, gs, uid)


ADMIN = authenticated(ADMIN_NAME, MASTERS)


def node_user(node: str) -> User:
    return authenticated(NODE_PREFIX + node, NODES)
