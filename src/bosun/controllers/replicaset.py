"""ReplicaSet controller: keep ``spec.replicas`` pods matching the selector.

Pods are claimed the Kubernetes way (orphans that match are adopted, owned pods whose labels
stopped matching are released), created in slow-start batches and deleted most expendable
first. Expectations make a lagging informer harmless: while creates or deletes are in
flight the controller only refreshes status, so it never counts the same gap twice.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from bosun.api.selectors import LabelSelector
from bosun.client.errors import ApiError
from bosun.client.workqueue import run_workers
from bosun.component import ComponentContext
from bosun.controllers._common import (
    PODS,
    Controller,
    Obj,
    controller_ref,
    index_by_controller_uid,
    is_pod_active,
    is_pod_ready,
    is_terminating,
    key_of,
    labels_of,
    namespace_terminating,
    next_available_in,
    owner_ref,
    pod_from_template,
    resource,
    selector_of,
    set_condition,
    split_key,
)
from bosun.controllers.replicaset_pods import (
    Expectations,
    deletion_order,
    replica_status,
    slow_start,
)

log = logging.getLogger(__name__)

RS = resource("apps", "v1", "replicasets")
# At most this many creates or deletes per sync, as Kubernetes' burstReplicas.
BURST = 500
# Pod informer index: namespace -> pods no controller owns (the only ones a ReplicaSet may adopt).
ORPHANS = "replicaset-orphans"
# A generated name can collide with a live pod's (27^5 suffixes: a few times per 10,000 pods);
# the API answers 409 AlreadyExists and a fresh attempt draws another name.
NAME_RETRIES = 5
# Pod changes that can only move status counts (bound, an address, a create observed while more
# are in flight) sync the ReplicaSet at most this much later, so thousands of them share one sync.
# A pod becoming ready or unready syncs at once, as upstream's updatePod enqueues it: a rolling
# update waits on readyReplicas/availableReplicas for its next step, and a fixed delay there
# stalls every step. Bursts still coalesce: the work queue holds a key once, and events that
# arrive while it is being synced make one more sync after it, not one each.
STATUS_BATCH = 0.25


class _ManageError(Exception):
    """Creating or deleting pods failed; ``reason`` is the ReplicaFailure reason to show."""

    def __init__(self, reason: str, error: ApiError) -> None:
        super().__init__(str(error))
        self.reason = reason
        self.error = error


class ReplicaSetController(Controller):
    """Also the ReplicationController's controller (as upstream's is): the kinds differ only
    in their resource, their kind name in owner references and the form of their selector."""

    name = "replicaset"
    workers = 5  # kube-controller-manager's --concurrent-replicaset-syncs
    resource = RS
    kind = "ReplicaSet"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations()
        self._terminating: set[str] = set()  # keys of pods seen terminating, until removed
        self.rs_inf = ctx.informers.get(self.resource)
        self.pod_inf = ctx.informers.get(PODS)
        index_by_controller_uid(self.pod_inf)
        self.pod_inf.add_index(ORPHANS, _orphan_namespace)
        self.rs_inf.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self._rs_deleted)
        self.pod_inf.add_handler(self._pod_added, self._pod_updated, self._pod_removed)

    async def run(self) -> None:
        """The skeleton's run, but waiting for *our* informers: SharedInformers.start() only
        waits for informers it started itself, so a component that starts second could act
        on an empty pod cache (and create every pod again) after a restart."""
        await self.ctx.informers.start()
        await asyncio.gather(*(inf.wait_synced(60) for inf in (self.rs_inf, self.pod_inf)))
        try:
            await run_workers(self.queue, self.reconcile, self.workers)
        finally:
            self.queue.shutdown()

    def selector(self, rs: Obj) -> LabelSelector:
        """Which pods the object wants (a ReplicaSet's ``spec.selector``, a LabelSelector)."""
        return selector_of(rs)

    # ---- event handlers ------------------------------------------------------------------

    def _rs_deleted(self, rs: Obj) -> None:
        self.expectations.forget(key_of(rs))
        self.enqueue(rs)

    def _owner_key(self, pod: Obj) -> str | None:
        """The key of the ReplicaSet that controls ``pod`` (if it exists with that uid)."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != self.kind:
            return None
        ns = (pod.get("metadata") or {}).get("namespace")
        rs = self.rs_inf.get(ns, ref["name"])
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return key_of(rs)

    def _enqueue_matching(self, pod: Obj) -> None:
        """An orphan changed: every ReplicaSet that might adopt it takes a look."""
        ns = (pod.get("metadata") or {}).get("namespace")
        labels = labels_of(pod)
        for rs in self.rs_inf.list(ns):
            if self.selector(rs).matches(labels):
                self.enqueue(rs)

    def _pod_added(self, pod: Obj) -> None:
        if is_terminating(pod):
            self._pod_deleted(pod)
            return
        if controller_ref(pod) is None:
            self._enqueue_matching(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            if self.expectations.satisfied(key):
                self.queue.add(key)  # the last create we waited for: the next batch may start
            else:
                self.queue.add_after(key, STATUS_BATCH)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        om, nm = old.get("metadata") or {}, new.get("metadata") or {}
        if om.get("resourceVersion") == nm.get("resourceVersion"):
            return
        if is_terminating(new) and not is_terminating(old):
            self._pod_deleted(new)
            if labels_of(old) != labels_of(new):
                self._pod_deleted(old)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            key = self._owner_key(old)
            if key is not None:
                self.queue.add(key)
        if new_ref is not None:
            key = self._owner_key(new)
            if key is not None:
                if (_status_only(old, new) and old_ref is not None and old_ref.get("uid") == new_ref.get("uid")
                        and is_pod_ready(old) == is_pod_ready(new)):
                    # Every sync of a big ReplicaSet walks all its pods; 10,000 pods being bound
                    # and getting addresses one by one would otherwise mean a sync per event.
                    self.queue.add_after(key, STATUS_BATCH)
                else:
                    self.queue.add(key)
        elif labels_of(old) != labels_of(new) or old_ref is not None:
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        """A pod began terminating (it no longer counts) or left without our seeing that."""
        key = self._owner_key(pod)
        if key is not None:
            self._terminating.add(key_of(pod))
            self.expectations.deletion_observed(key, key_of(pod))
            if self.expectations.satisfied(key):
                self.queue.add(key)  # a pod to replace, or the last deletion we waited for
            else:
                self.queue.add_after(key, STATUS_BATCH)  # one of many deletions in flight

    def _pod_removed(self, pod: Obj) -> None:
        """The informer's delete handler: a pod seen terminating before was already counted
        as gone then, so its final removal can only move status (batched)."""
        pod_key = key_of(pod)
        if pod_key not in self._terminating:
            self._pod_deleted(pod)
        self._terminating.discard(pod_key)
        key = self._owner_key(pod)
        if key is not None:
            self.queue.add_after(key, STATUS_BATCH)

    # ---- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        rs = self.rs_inf.get(ns, name)
        if rs is None:
            self.expectations.forget(key)
            return
        rs = copy.deepcopy(rs)
        needs_sync = self.expectations.satisfied(key)
        pods = [p for p in await self._claim_pods(rs) if is_pod_active(p)]
        error: ApiError | None = None
        failure: tuple[str, str] | None = None
        if needs_sync and not is_terminating(rs):
            try:
                pods = await self._manage(rs, pods, key)
            except _ManageError as exc:
                error = exc.error
                failure = (exc.reason, str(exc.error))
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        await self._update_status(key, rs, pods, failure)
        if error is not None:
            raise error
        wait = next_available_in(pods, min_ready)
        if wait is not None:
            self.queue.add_after(key, wait + 0.05)

    async def _claim_pods(self, rs: Obj) -> list[Obj]:
        """Pods this ReplicaSet controls after adopting matching orphans and releasing
        owned pods whose labels no longer match."""
        selector = self.selector(rs)
        uid = rs["metadata"]["uid"]
        ns = rs["metadata"].get("namespace")
        owned: list[Obj] = []
        # Only pods it controls and orphans concern a ReplicaSet: through the indexes a sync
        # costs O(its own pods), not O(every pod in the namespace) (a rolling update of
        # 10,000 replicas syncs two ReplicaSets over 20,000 pods hundreds of times).
        candidates = [*self.pod_inf.by_index("controller-uid", uid), *self.pod_inf.by_index(ORPHANS, str(ns or ""))]
        for pod in candidates:
            ref = _controller_ref(pod)
            matches = selector.matches((pod.get("metadata") or {}).get("labels") or {})
            if ref is not None and ref.get("uid") == uid:
                if matches:
                    owned.append(pod)
                elif not is_terminating(pod):
                    await self._release(rs, pod)
            elif ref is None and matches and not is_terminating(pod) and not is_terminating(rs):
                adopted = await self._adopt(rs, pod)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    def _retry_later(self, rs: Obj, exc: ApiError) -> None:
        """A claim lost a race (409) or hit a pod that changed: look again soon."""
        if exc.status == 409:
            self.queue.add_after(key_of(rs), 0.05)

    async def _adopt(self, rs: Obj, pod: Obj) -> Obj | None:
        pm = pod["metadata"]
        patch = {"metadata": {"ownerReferences": [owner_ref(rs)], "uid": pm["uid"]}}
        try:
            return await self.client.patch(PODS, pm["name"], patch, pm.get("namespace"), patch_type="strategic")
        except ApiError as exc:
            if exc.status in (404, 409, 422):
                self._retry_later(rs, exc)
                return None  # gone, changed, or claimed by someone else meanwhile
            raise

    async def _release(self, rs: Obj, pod: Obj) -> None:
        pm = pod["metadata"]
        patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": rs["metadata"]["uid"]}],
                              "uid": pm["uid"]}}
        try:
            await self.client.patch(PODS, pm["name"], patch, pm.get("namespace"), patch_type="strategic")
        except ApiError as exc:
            if exc.status not in (404, 409, 422):
                raise
            self._retry_later(rs, exc)

    async def _manage(self, rs: Obj, pods: list[Obj], key: str) -> list[Obj]:
        """Create or delete pods toward ``spec.replicas``; returns the pods left active."""
        want = int(rs["spec"].get("replicas", 1) or 0)
        diff = len(pods) - want
        if diff < 0:
            n = min(-diff, BURST)
            self.expectations.expect_creations(key, n)
            made, error = await slow_start(n, lambda: self._create_pod(rs))
            if n - made:
                self.expectations.creation_observed(key, n - made)
            if isinstance(error, ApiError) and namespace_terminating(error):
                return pods  # the namespace is going away with this ReplicaSet: not a failure
            if error is not None:
                if isinstance(error, ApiError):
                    self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {error}")
                    raise _ManageError("FailedCreate", error)
                raise error
        elif diff > 0:
            victims = deletion_order(pods)[:min(diff, BURST)]
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            results = await asyncio.gather(*(self._delete_pod(rs, key, p) for p in victims),
                                           return_exceptions=True)
            gone = {key_of(p) for p, r in zip(victims, results, strict=True) if r is None}
            pods = [p for p in pods if key_of(p) not in gone]
            for r in results:
                if isinstance(r, ApiError):
                    raise _ManageError("FailedDelete", r)
                if isinstance(r, BaseException):
                    raise r
        return pods

    async def _create_pod(self, rs: Obj) -> None:
        pod = pod_from_template(rs["spec"].get("template") or {}, rs)
        for attempt in range(NAME_RETRIES):
            try:
                created = await self.client.create(PODS, pod, rs["metadata"].get("namespace"))
                break
            except ApiError as exc:
                generated = not (pod.get("metadata") or {}).get("name")
                if exc.status != 409 or not generated or attempt == NAME_RETRIES - 1:
                    raise
        self._normal_event(rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    async def _delete_pod(self, rs: Obj, key: str, pod: Obj) -> None:
        pm = pod["metadata"]
        try:
            await self.client.delete(PODS, pm["name"], pm.get("namespace"),
                                     preconditions={"uid": pm["uid"]})
        except ApiError as exc:
            self.expectations.deletion_observed(key, key_of(pod))
            if exc.status in (404, 409):
                return None  # already gone (or replaced by a namesake): nothing to do
            self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {exc}")
            raise
        self._normal_event(rs, "SuccessfulDelete", f"Deleted pod: {pm['name']}")
        return None

    def _normal_event(self, rs: Obj, reason: str, message: str) -> None:
        self.recorder.event(rs, "Normal", reason, message)  # the recorder filters spam

    async def _update_status(self, key: str, rs: Obj, pods: list[Obj], failure: tuple[str, str] | None) -> None:
        spec = rs.get("spec") or {}
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        old: dict[str, Any] = rs.get("status") or {}
        status: dict[str, Any] = {**copy.deepcopy(old),
                                  **replica_status(pods, tmpl_labels, int(spec.get("minReadySeconds") or 0))}
        status["observedGeneration"] = rs["metadata"].get("generation", 1)
        if failure is not None:
            # Set once, as Kubernetes: rewriting it per attempt (the message names a random pod)
            # would be an RS update that requeues at once and defeats the back-off.
            if not any(c.get("type") == "ReplicaFailure" for c in status.get("conditions") or []):
                set_condition(status, "ReplicaFailure", "True", failure[0], failure[1])
        elif status.get("conditions"):
            status["conditions"] = [c for c in status["conditions"] if c.get("type") != "ReplicaFailure"]
            if not status["conditions"]:
                del status["conditions"]
        if status == old:
            return
        try:
            await self.client.update(self.resource, {**rs, "status": status}, subresource="status")
        except ApiError as exc:
            if exc.status == 409:
                self.queue.add(key)  # the cache was behind: look again with fresh data
            elif exc.status != 404:
                raise


def _controller_ref(pod: Obj) -> Obj | None:
    """controller_ref without the copy (read-only use in per-pod loops)."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def _status_only(old: Obj, new: Obj) -> bool:
    """Whether a pod update can change nothing but the ReplicaSet's status counts: same
    labels, still running or pending (a pod that finished must be replaced at once)."""
    phase = (new.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and labels_of(old) == labels_of(new)


def _orphan_namespace(pod: Obj) -> list[str]:
    if controller_ref(pod) is not None:
        return []
    return [str((pod.get("metadata") or {}).get("namespace") or "")]


async def run(ctx: ComponentContext) -> None:
    await ReplicaSetController(ctx).run()
