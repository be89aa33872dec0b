"""ReplicationController controller: the ReplicaSet controller over ``v1`` ReplicationControllers.

Kubernetes runs the ReplicaSet controller for them too, converting each object; here the
one controller class is given the other resource, the kind name its owner references
carry, and the plain label map that is a ReplicationController's selector.
"""

from __future__ import annotations

from bosun.api.selectors import LabelSelector, label_selector_from_dict
from bosun.component import ComponentContext
from bosun.controllers._common import Obj, resource
from bosun.controllers.replicaset import ReplicaSetController

RC = resource("", "v1", "replicationcontrollers")


class ReplicationManager(ReplicaSetController):
    name = "replicationcontroller"
    resource = RC
    kind = "ReplicationController"

    def selector(self, rs: Obj) -> LabelSelector:
        labels = (rs.get("spec") or {}).get("selector")
        # An empty or missing selector selects nothing (validation refuses it anyway).
        return label_selector_from_dict({"matchLabels": labels} if labels else None)


async def run(ctx: ComponentContext) -> None:
    await ReplicationManager(ctx).run()
