"""``service rollback``: back to the previous spec, as Docker keeps one previous spec per
service. A Deployment's previous spec is the template of its previous ReplicaSet revision
(what ``kubectl rollout undo`` uses); a DaemonSet's is its previous ControllerRevision."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bosun.api.kinds import Kind, must_by_plural
from bosun.client.rest import Client
from bosun.swarm.services import ServiceRef
from bosun.swarm.update_status import ANNOTATION, ROLLBACK_STARTED, UpdateStatus, generation, rfc3339_now

JSON = dict[str, Any]
REPLICASETS = must_by_plural("apps", "v1", "replicasets")
REVISIONS = must_by_plural("apps", "v1", "controllerrevisions")
REVISION = "deployment.kubernetes.io/revision"


class NoPrevious(Exception):
    """Nothing to roll back to (Docker: "service has no previous spec")."""


def _owned_by(obj: JSON, uid: str) -> bool:
    return any(r.get("uid") == uid for r in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _revision(obj: JSON) -> int:
    meta = obj.get("metadata") or {}
    return int((meta.get("annotations") or {}).get(REVISION) or obj.get("revision") or 0)


def _from_replicaset(rs: JSON) -> JSON:
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    (template.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    return template


def _from_revision(rev: JSON) -> JSON:
    return copy.deepcopy(((rev.get("data") or {}).get("spec") or {}).get("template") or {})


# Where each kind keeps its history, and how a past template is read back from it.
_HISTORY: dict[str, tuple[Kind, Callable[[JSON], JSON]]] = {
    "Deployment": (REPLICASETS, _from_replicaset),
    "DaemonSet": (REVISIONS, _from_revision),
}


async def previous_template_of(client: Client, obj: JSON) -> JSON:
    """The pod template of the revision before ``obj``'s current one (a Deployment or DaemonSet)."""
    meta = obj.get("metadata") or {}
    uid, display = str(meta.get("uid") or ""), str(meta.get("name") or "")
    history = _HISTORY.get(str(obj.get("kind")))
    if history is None:
        raise NoPrevious(f"service {display} keeps no previous spec")
    res, read = history
    items, _ = await client.list_all(res, meta.get("namespace"))
    owned = sorted((o for o in items if _owned_by(o, uid)), key=_revision)
    if len(owned) < 2:
        raise NoPrevious(f"service {display} has no previous spec")
    return read(owned[-2])


async def previous_template(client: Client, svc: ServiceRef) -> JSON:
    if str(svc.obj.get("kind")) not in _HISTORY:
        raise NoPrevious(f"service {svc.display} keeps no previous spec ({svc.mode} mode)")
    try:
        return await previous_template_of(client, svc.obj)
    except NoPrevious:
        raise NoPrevious(f"service {svc.display} has no previous spec") from None


def mark_rollback(obj: JSON, message: str) -> None:
    """Say in ``obj`` (written with the previous template) that this update is a rollback: of
    the template ``obj`` was read with, whose generation the status keeps."""
    status = UpdateStatus.of(obj) or UpdateStatus()
    status = UpdateStatus(state=ROLLBACK_STARTED, started_at=rfc3339_now(), message=message,
                          saved_strategy=status.saved_strategy, generation=generation(obj))
    obj.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION] = status.dump()


async def roll_back(client: Client, svc: ServiceRef, why: str = "manually requested rollback") -> None:
    template = await previous_template(client, svc)
    live = await client.get(svc.kind.resource, svc.name, svc.namespace)
    live["spec"]["template"] = template
    mark_rollback(live, why)
    await client.update(svc.kind.resource, live)
