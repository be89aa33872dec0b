"""ControllerRevisions: the template history of StatefulSets and DaemonSets.

Each distinct pod template an owner has had is kept as a ControllerRevision named
``<owner>-<hash>`` whose data is the strategic-merge patch Kubernetes stores
(``{"spec": {"template": {..., "$patch": "replace"}}}``), so that ``kubectl rollout history``
and ``rollout undo`` read them as they read Kubernetes' own.
"""

from __future__ import annotations

import copy
from typing import Any

from bosun.client.errors import ApiError
from bosun.client.informer import Informer
from bosun.client.rest import Client
from bosun.controllers._common import index_by_controller_uid, owner_ref, resource, template_hash

Obj = dict[str, Any]

REVISIONS = resource("apps", "v1", "controllerrevisions")
HASH_LABEL = "controller.kubernetes.io/hash"


def revision_data(template: Obj) -> Obj:
    return {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision recorded."""
    tmpl = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    tmpl.pop("$patch", None)
    return tmpl


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


class RevisionHistory:
    """Reads an owner's revisions from the shared informer and writes new ones."""

    def __init__(self, client: Client, informer: Informer) -> None:
        self.client = client
        self.informer = informer
        # Re-adding the same index on a shared informer is harmless (it is rebuilt).
        index_by_controller_uid(informer)

    def owned(self, owner: Obj) -> list[Obj]:
        """The owner's revisions, oldest first."""
        revs = self.informer.by_index("controller-uid", owner["metadata"]["uid"])
        return sorted(revs, key=lambda r: (revision_number(r), r["metadata"].get("name", "")))

    async def ensure(self, owner: Obj, template: Obj, collision_count: int) -> tuple[Obj, int]:
        """The revision recording ``template`` (made the newest), and the collision count to
        store in the owner's status (raised when another template already took the name)."""
        revs = self.owned(owner)
        latest = revision_number(revs[-1]) if revs else 0
        for rev in reversed(revs):
            if template_of(rev) == template:
                if rev is revs[-1]:
                    return rev, collision_count
                # Back to an older template (rollback): it becomes the newest revision again.
                updated = await self.client.patch(REVISIONS, rev["metadata"]["name"], {"revision": latest + 1},
                                                  rev["metadata"]["namespace"])
                return updated, collision_count
        meta = owner["metadata"]
        while True:
            h = template_hash(template, collision_count)
            name = f"{meta['name']}-{h}"
            body: Obj = {
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": name, "namespace": meta["namespace"],
                             "labels": {**((template.get("metadata") or {}).get("labels") or {}), HASH_LABEL: h},
                             "ownerReferences": [owner_ref(owner)]},
                "data": revision_data(template), "revision": latest + 1,
            }
            try:
                return await self.client.create(REVISIONS, body, meta["namespace"]), collision_count
            except ApiError as e:
                if e.status != 409:
                    raise
            existing = await self.client.get(REVISIONS, name, meta["namespace"])
            ref = [r for r in (existing["metadata"].get("ownerReferences") or []) if r.get("controller")]
            if ref and ref[0].get("uid") == meta["uid"] and template_of(existing) == template:
                return existing, collision_count  # ours; the informer had not seen it yet
            collision_count += 1

    async def prune(self, owner: Obj, live: set[str], limit: int) -> None:
        """Delete the oldest revisions beyond ``limit`` that no pod or status still names."""
        old = [r for r in self.owned(owner) if r["metadata"]["name"] not in live]
        for rev in old[:max(0, len(old) - max(0, limit))]:
            try:
                await self.client.delete(REVISIONS, rev["metadata"]["name"], rev["metadata"]["namespace"],
                                         preconditions={"uid": rev["metadata"]["uid"]})
            except ApiError as e:
                if e.status not in (404, 409):
                    raise
