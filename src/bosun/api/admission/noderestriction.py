"""Kubernetes' NodeRestriction admission, for creates: a node creates only its own Node and
its own Lease (the name is in the object, which the authorizer does not see)."""

from __future__ import annotations

from bosun.api.admission.base import CREATE, Operation, Request
from bosun.api.registry import Resource, must_by_plural
from bosun.api.requestinfo import forbidden
from bosun.security.authz import Attributes
from bosun.security.authz.node import admit_create

NODES = must_by_plural("", "v1", "nodes")
LEASES = must_by_plural("coordination.k8s.io", "v1", "leases")


class NodeRestriction:
    """Runs with the mutating plugins so that a dry run is refused as a real create is."""

    name = "NodeRestriction"
    mutating = True

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res in (NODES, LEASES) and operation == CREATE and subresource is None

    async def admit(self, req: Request) -> None:
        node = req.user.node_name if req.user is not None else None
        if node is None:
            return
        res = req.res
        # As the authorizer saw the request: a create on the collection (no name in the URL).
        attrs = Attributes(req.user, "create", True, res.group, res.version, res.plural, "", req.namespace or "")
        why = admit_create(node, attrs, req.obj)
        if why is not None:
            raise forbidden(attrs, why)
