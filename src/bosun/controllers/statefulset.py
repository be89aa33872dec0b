"""StatefulSet controller: pods with stable names, hostnames and storage.

Pods ``<set>-0..N-1`` are created in order, each waiting for the one before it to be
Running and Ready (OrderedReady) or all at once (Parallel); scale-down and rolling updates
go from the highest ordinal down, one pod at a time. A pod's PersistentVolumeClaims outlive
it, so a replacement pod gets the same data back. Template history is kept in
ControllerRevisions; ``status.currentRevision``/``updateRevision`` say which pods run which.
"""

from __future__ import annotations

import logging
from typing import Any

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import (
    PODS,
    Controller,
    controller_ref,
    index_by_controller_uid,
    is_terminating,
    next_available_in,
    owner_ref,
    resource,
    selector_of,
    split_key,
)
from bosun.controllers.controller_revisions import REVISIONS, RevisionHistory, template_of
from bosun.controllers.statefulset_pods import (
    claim_name,
    claims_for,
    is_finished,
    is_running_and_ready,
    new_pod,
    ordinal_of,
    replica_status,
    revision_of,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]

STATEFULSETS = resource("apps", "v1", "statefulsets")
PVCS = resource("", "v1", "persistentvolumeclaims")


class StatefulSetController(Controller):
    name = "statefulset"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.sets = ctx.informers.get(STATEFULSETS)
        self.pods = ctx.informers.get(PODS)
        self.claims = ctx.informers.get(PVCS)
        self.history = RevisionHistory(self.client, ctx.informers.get(REVISIONS))
        index_by_controller_uid(self.pods)
        self.sets.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.pods.add_handler(self._pod_changed, lambda _o, n: self._pod_changed(n), self._pod_changed)
        self.claims.add_handler(on_delete=self._claim_deleted)

    def _pod_changed(self, pod: Obj) -> None:
        if controller_ref(pod) is not None:
            self.enqueue_owner(pod, "StatefulSet")
            return
        # An orphan that a set's selector matches may be adopted.
        ns = pod["metadata"].get("namespace")
        for sts in self.sets.list(ns):
            if selector_of(sts).matches(pod["metadata"].get("labels")):
                self.enqueue(sts)

    def _claim_deleted(self, claim: Obj) -> None:
        # A claim deleted under a pending pod lets that pod be created again.
        ns = claim["metadata"].get("namespace")
        for sts in self.sets.list(ns):
            if selector_of(sts).matches(claim["metadata"].get("labels")):
                self.enqueue(sts)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        sts = self.sets.get(ns, name)
        if sts is None or is_terminating(sts):
            return
        status = dict(sts.get("status") or {})
        collisions = int(status.get("collisionCount") or 0)
        template = (sts.get("spec") or {}).get("template") or {}
        update_rev, collisions = await self.history.ensure(sts, template, collisions)
        update_name = update_rev["metadata"]["name"]
        revisions = {r["metadata"]["name"]: r for r in self.history.owned(sts)}
        revisions[update_name] = update_rev
        current_name = status.get("currentRevision") or ""
        if current_name not in revisions:
            current_name = update_name
        current_template = template_of(revisions[current_name])

        pods = await self._claim_pods(sts)
        wait = await self._sync_pods(sts, pods, current_name, current_template, update_name, template)
        pods = self.pods.by_index("controller-uid", sts["metadata"]["uid"])
        await self._write_status(sts, pods, current_name, update_name, collisions)
        live = {current_name, update_name} | {revision_of(p) for p in pods}
        await self.history.prune(sts, live, int((sts.get("spec") or {}).get("revisionHistoryLimit") or 10))
        if wait is not None:
            self.queue.add_after(key, wait)

    async def _claim_pods(self, sts: Obj) -> list[Obj]:
        """Pods the set controls, after adopting matching orphans and releasing pods whose
        labels stopped matching."""
        uid = sts["metadata"]["uid"]
        sel = selector_of(sts)
        name = sts["metadata"]["name"]
        ns = sts["metadata"]["namespace"]
        owned: list[Obj] = []
        for pod in self.pods.by_index("controller-uid", uid):
            if sel.matches(pod["metadata"].get("labels")) or is_terminating(pod):
                owned.append(pod)
                continue
            await self._patch_pod(pod, {"metadata": {"ownerReferences": [
                r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid],
                "uid": pod["metadata"]["uid"]}})
        for pod in self.pods.list(ns):
            m = pod["metadata"]
            if (controller_ref(pod) is None and not is_terminating(pod) and sel.matches(m.get("labels"))
                    and ordinal_of(name, pod) >= 0):
                refs = [*(m.get("ownerReferences") or []), owner_ref(sts)]
                adopted = await self._patch_pod(pod, {"metadata": {"ownerReferences": refs, "uid": m["uid"]}})
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _patch_pod(self, pod: Obj, patch: Obj) -> Obj | None:
        try:
            return await self.client.patch(PODS, pod["metadata"]["name"], patch, pod["metadata"]["namespace"])
        except ApiError as e:
            if e.status in (404, 409, 422):
                return None
            raise

    async def _sync_pods(self, sts: Obj, pods: list[Obj], current: str, current_template: Obj,
                         update: str, update_template: Obj) -> float | None:
        """One step toward the spec; returns seconds after which to look again, if any."""
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        replicas = _replicas(spec)
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0) if rolling else 0

        slots: list[Obj | None] = [None] * replicas
        condemned: list[Obj] = []
        for pod in pods:
            ordinal = ordinal_of(name, pod)
            if 0 <= ordinal < replicas:
                slots[ordinal] = pod
            elif ordinal >= replicas:
                condemned.append(pod)
        condemned.sort(key=lambda p: ordinal_of(name, p), reverse=True)

        def template_for(ordinal: int) -> tuple[Obj, str]:
            # Below the partition pods stay at the current revision; OnDelete recreates
            # whatever the user deleted at the update revision (as Kubernetes does).
            if rolling and ordinal < partition and current != update:
                return current_template, current
            return update_template, update

        # Replace failed pods, create missing ones, wait for each in turn when ordered.
        for ordinal, slot in enumerate(slots):
            if slot is not None and is_finished(slot) and not is_terminating(slot):
                await self._delete_pod(sts, slot)
                if monotonic:
                    return None
                continue
            if slot is None:
                tmpl, rev = template_for(ordinal)
                if not await self._create_pod(sts, tmpl, rev, ordinal):
                    return None  # a claim is still being deleted; its deletion requeues us
                if monotonic:
                    return None
                continue
            if monotonic and (is_terminating(slot) or not is_running_and_ready(slot)):
                return None

        # Scale down from the highest ordinal, one at a time when ordered.
        for pod in condemned:
            if is_terminating(pod):
                if monotonic:
                    return None
                continue
            await self._delete_pod(sts, pod)
            if monotonic:
                return None
        await self._delete_scaled_claims(sts, pods, replicas)

        if not rolling:
            return self._availability_recheck(sts, [p for p in slots if p is not None])
        # Rolling update: highest ordinal first, down to the partition, one pod at a time.
        for ordinal in range(replicas - 1, partition - 1, -1):
            target = slots[ordinal]
            if target is None or is_terminating(target):
                return None
            if revision_of(target) != update:
                await self._delete_pod(sts, target)
                return None
            if not is_running_and_ready(target):
                return None
        return self._availability_recheck(sts, [p for p in slots if p is not None])

    def _availability_recheck(self, sts: Obj, pods: list[Obj]) -> float | None:
        """Seconds until a ready pod becomes available (minReadySeconds), if one will."""
        wait = next_available_in(pods, int((sts.get("spec") or {}).get("minReadySeconds") or 0))
        return None if wait is None else wait + 0.1

    # -- writes ------------------------------------------------------------------------------

    async def _create_pod(self, sts: Obj, template: Obj, revision: str, ordinal: int) -> bool:
        """Create the pod's claims (if missing) and the pod; False while a claim is going away."""
        ns = sts["metadata"]["namespace"]
        pod = new_pod(sts, template, revision, ordinal)
        pod_name = pod["metadata"]["name"]
        for claim in claims_for(sts, ordinal):
            cname = claim["metadata"]["name"]
            have = self.claims.get(ns, cname)
            if have is not None:
                if is_terminating(have):
                    return False
                continue
            try:
                await self.client.create(PVCS, claim, ns)
            except ApiError as e:
                if e.status != 409:
                    self.recorder.event(sts, "Warning", "FailedCreate",
                                        f"create Claim {cname} for Pod {pod_name} in StatefulSet "
                                        f"{sts['metadata']['name']} failed error: {e}")
                    raise
            else:
                self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                    f"create Claim {cname} Pod {pod_name} in StatefulSet "
                                    f"{sts['metadata']['name']} success")
        try:
            await self.client.create(PODS, pod, ns)
        except ApiError as e:
            if e.status == 409:
                return True  # created before; the informer has not caught up
            self.recorder.event(sts, "Warning", "FailedCreate",
                                f"create Pod {pod_name} in StatefulSet {sts['metadata']['name']} failed error: {e}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulCreate",
                            f"create Pod {pod_name} in StatefulSet {sts['metadata']['name']} successful")
        return True

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        m = pod["metadata"]
        try:
            await self.client.delete(PODS, m["name"], m["namespace"], preconditions={"uid": m["uid"]})
        except ApiError as e:
            if e.status in (404, 409):
                return  # already gone (a stale cache), or replaced by a newer pod of that name
            self.recorder.event(sts, "Warning", "FailedDelete",
                                f"delete Pod {m['name']} in StatefulSet {sts['metadata']['name']} failed error: {e}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulDelete",
                            f"delete Pod {m['name']} in StatefulSet {sts['metadata']['name']} successful")

    async def _delete_scaled_claims(self, sts: Obj, pods: list[Obj], replicas: int) -> None:
        """whenScaled=Delete: claims of ordinals above the replicas go once their pod has."""
        spec = sts.get("spec") or {}
        if (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled") != "Delete":
            return
        ns = sts["metadata"]["namespace"]
        name = sts["metadata"]["name"]
        present = {ordinal_of(name, p) for p in pods}
        sel = selector_of(sts)
        for tmpl in spec.get("volumeClaimTemplates") or []:
            tname = (tmpl.get("metadata") or {}).get("name", "")
            prefix = f"{tname}-{name}-"
            for claim in self.claims.list(ns):
                cm = claim["metadata"]
                suffix = cm["name"][len(prefix):] if cm["name"].startswith(prefix) else ""
                if not suffix.isdigit() or is_terminating(claim) or not sel.matches(cm.get("labels")):
                    continue
                ordinal = int(suffix)
                if ordinal < replicas or ordinal in present or cm["name"] != claim_name(tname, sts, ordinal):
                    continue
                try:
                    await self.client.delete(PVCS, cm["name"], ns, preconditions={"uid": cm["uid"]})
                except ApiError as e:
                    if e.status not in (404, 409):
                        raise

    async def _write_status(self, sts: Obj, pods: list[Obj], current: str, update: str, collisions: int) -> None:
        counts = replica_status(sts, pods, current, update)
        spec = sts.get("spec") or {}
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        replicas = _replicas(spec)
        if (strategy == "RollingUpdate" and counts["updatedReplicas"] == counts["replicas"] == replicas
                and counts["readyReplicas"] == counts["replicas"]):
            # Every pod runs the update revision: it becomes the current one.
            current = update
            counts["currentReplicas"] = counts["updatedReplicas"]
        new: Obj = {**counts, "observedGeneration": sts["metadata"].get("generation", 1),
                    "currentRevision": current, "updateRevision": update, "collisionCount": collisions}
        await self.patch_status(STATEFULSETS, sts, new)


def _replicas(spec: Obj) -> int:
    value = spec.get("replicas")
    return 1 if value is None else int(value)


async def run(ctx: ComponentContext) -> None:
    await StatefulSetController(ctx).run()
