"""What every workload controller needs: owner references, pods from templates, pod
readiness and availability, label selectors, and the reconcile-loop skeleton."""

from __future__ import annotations

import abc
import copy
import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bosun.api.registry import Resource, must_by_plural
from bosun.api.selectors import LabelSelector, label_selector_from_dict
from bosun.client.errors import ApiError
from bosun.client.informer import Informer
from bosun.client.workqueue import WorkQueue, run_workers
from bosun.component import ComponentContext

log = logging.getLogger(__name__)
Obj = dict[str, Any]


resource = must_by_plural  # controllers and tests import it by this name


PODS = resource("", "v1", "pods")
NODES = resource("", "v1", "nodes")


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(when: datetime | None = None) -> str:
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def key_of(obj: Obj) -> str:
    m = obj.get("metadata") or {}
    ns = m.get("namespace")
    return f"{ns}/{m.get('name')}" if ns else str(m.get("name"))


def split_key(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name


# ---- ownership ---------------------------------------------------------------------------

def owner_ref(owner: Obj, *, controller: bool = True, block: bool = True) -> Obj:
    m = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": m["name"], "uid": m["uid"],
            "controller": controller, "blockOwnerDeletion": block}


def controller_ref(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_key(obj: Obj, kind: str) -> str | None:
    """The work-queue key of the controller of ``obj`` if it is of ``kind``: the object a
    pod event concerns, without a cache lookup (the owner may be gone)."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    ns = (obj.get("metadata") or {}).get("namespace")
    return f"{ns}/{ref['name']}" if ns else str(ref["name"])


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


def index_by_controller_uid(inf: Informer) -> None:
    """Index "controller-uid" on an informer: the objects a given owner controls."""
    def fn(obj: Obj) -> list[str]:
        ref = controller_ref(obj)
        return [ref["uid"]] if ref and ref.get("uid") else []
    inf.add_index("controller-uid", fn)


# ---- selectors ---------------------------------------------------------------------------

def selector_of(obj: Obj) -> LabelSelector:
    """The object's spec.selector (None matches nothing, as Kubernetes)."""
    return label_selector_from_dict((obj.get("spec") or {}).get("selector"))


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


# ---- pods --------------------------------------------------------------------------------

def pod_from_template(template: Obj, owner: Obj, *, name: str | None = None,
                      generate_name: str | None = None, extra_labels: dict[str, str] | None = None) -> Obj:
    """A Pod built from a pod template, controlled by ``owner``."""
    tmpl = copy.deepcopy(template or {})
    tm = tmpl.get("metadata") or {}
    meta: Obj = {
        "namespace": owner["metadata"].get("namespace"),
        "labels": {**(tm.get("labels") or {}), **(extra_labels or {})},
        "ownerReferences": [owner_ref(owner)],
    }
    if tm.get("annotations"):
        meta["annotations"] = dict(tm["annotations"])
    if tm.get("finalizers"):
        meta["finalizers"] = list(tm["finalizers"])
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name or f"{owner['metadata']['name']}-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl.get("spec") or {}}


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A short stable hash of a pod template, like Kubernetes' pod-template-hash label."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS) + str(collision_count).encode()
    digest = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    out = ""
    while digest and len(out) < 10:
        digest, r = divmod(digest, len(alphabet))
        out += alphabet[r]
    return out


def namespace_terminating(exc: ApiError) -> bool:
    """The API refused a create because the namespace is being deleted: the object would go
    with it anyway, so a controller has nothing to do (and nothing to retry)."""
    return exc.status == 403 and "because it is being terminated" in exc.message


def is_terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_pod_active(pod: Obj) -> bool:
    """Counts toward replicas: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_terminating(pod)


def condition(obj: Obj, type_: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def is_pod_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def is_pod_available(pod: Obj, min_ready_seconds: int = 0, at: datetime | None = None) -> bool:
    """Ready for at least ``min_ready_seconds`` (Kubernetes' definition of available)."""
    c = condition(pod, "Ready")
    if c is None or c.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time(c.get("lastTransitionTime"))
    return since is not None and (at or now()) - since >= _seconds(min_ready_seconds)


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


def ready_since(pod: Obj) -> datetime | None:
    """When the pod last became Ready; None while it is not."""
    c = condition(pod, "Ready")
    if c is None or c.get("status") != "True":
        return None
    return parse_time(c.get("lastTransitionTime"))


def next_available_in(pods: Iterable[Obj], min_ready: int, at: datetime | None = None) -> float | None:
    """Seconds until the next ready-but-not-yet-available pod becomes available: when a
    controller must look again, since no watch event marks the end of minReadySeconds."""
    if min_ready <= 0:
        return None
    at = at or now()
    waits = []
    for p in pods:
        since = ready_since(p)
        if since is not None and not is_pod_available(p, min_ready, at):
            waits.append(max(0.0, since.timestamp() + min_ready - at.timestamp()))
    return min(waits) if waits else None


def set_condition(status: Obj, type_: str, value: str, reason: str = "", message: str = "") -> bool:
    """Set a status condition; lastTransitionTime changes only when the value does.
    Returns whether anything changed."""
    conds = list(status.get("conditions") or [])
    stamp = rfc3339()
    for i, c in enumerate(conds):
        if c.get("type") == type_:
            if c.get("status") == value and c.get("reason", "") == reason and c.get("message", "") == message:
                return False
            new = dict(c, status=value, reason=reason, message=message, lastUpdateTime=stamp)
            if c.get("status") != value:
                new["lastTransitionTime"] = stamp
            conds[i] = new
            status["conditions"] = conds
            return True
    conds.append({"type": type_, "status": value, "reason": reason, "message": message,
                  "lastTransitionTime": stamp, "lastUpdateTime": stamp})
    status["conditions"] = conds
    return True


def without_finalizer(fields: Obj, finalizer: str) -> Obj:
    """A copy of ``fields`` (an object's metadata, or a Namespace's spec) without
    ``finalizer`` in its ``finalizers``, the list left out when nothing is left."""
    rest = [f for f in fields.get("finalizers") or [] if f != finalizer]
    out = {k: v for k, v in fields.items() if k != "finalizers"}
    if rest:
        out["finalizers"] = rest
    return out


# ---- the reconcile loop ------------------------------------------------------------------

class Controller(abc.ABC):
    """Skeleton of a controller: informers feed keys into a work queue; ``reconcile(key)``
    makes the world match the object named by ``key``; failures retry with back-off."""

    name = "controller"
    workers = 2

    def __init__(self, ctx: ComponentContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()
        self.recorder = ctx.recorder(f"{self.name}-controller")

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def enqueue_owner(self, obj: Obj, kind: str) -> None:
        """Queue the controller of ``obj`` if it is of ``kind`` (e.g. a pod's ReplicaSet)."""
        key = owner_key(obj, kind)
        if key is not None:
            self.queue.add(key)

    def enqueue_all(self, objs: Iterable[Obj]) -> None:
        for o in objs:
            self.enqueue(o)

    async def patch_status(self, res: Resource, obj: Obj, fields: Obj) -> None:
        """Merge-patch ``fields`` into the object's status unless it holds them already (no
        write, no watch event, when nothing changed); an object deleted meanwhile is no error."""
        old = obj.get("status") or {}
        if all(old.get(k) == v for k, v in fields.items()):
            return
        m = obj["metadata"]
        try:
            await self.client.patch(res, m["name"], {"status": fields}, m.get("namespace"), subresource="status")
        except ApiError as e:
            if e.status != 404:
                raise

    async def write_conditions(self, res: Resource, obj: Obj, conditions: Iterable[tuple[str, str, str, str]]) -> None:
        """Set ``(type, status, reason, message)`` conditions on a kind whose conditions carry
        no ``lastUpdateTime`` (Namespace, CustomResourceDefinition, APIService), writing the
        status only when one of them changed."""
        status = {"conditions": [dict(c) for c in (obj.get("status") or {}).get("conditions") or []]}
        changed = False
        for type_, value, reason, message in conditions:
            changed |= set_condition(status, type_, value, reason, message)
        if changed:
            for c in status["conditions"]:
                c.pop("lastUpdateTime", None)
            await self.patch_status(res, obj, status)

    async def update_fresh(self, res: Resource, name: str, edit: Callable[[Obj], Obj], *,
                           subresource: str | None = None) -> None:
        """Write ``edit`` of a cluster-scoped object as it is now (read fresh, so the write is a
        compare-and-swap on that version): a write that lost a race is retried through the
        queue, and an object gone meanwhile needs nothing more."""
        try:
            obj = await self.client.get(res, name)
        except ApiError as exc:
            if exc.status == 404:
                return
            raise
        try:
            await self.client.update(res, edit(obj), subresource=subresource)
        except ApiError as exc:
            if exc.status == 409:
                self.queue.add(name)
            elif exc.status != 404:
                raise

    @abc.abstractmethod
    async def reconcile(self, key: str) -> None:
        """Make the world match the object named by ``key`` (it may be gone)."""

    async def run(self) -> None:
        await self.ctx.informers.start()
        try:
            await run_workers(self.queue, self.reconcile, self.workers)
        finally:
            self.queue.shutdown()
