"""Deployment controller: roll a Deployment's pod template out through ReplicaSets named
``<deployment>-<pod-template-hash>``, RollingUpdate (within maxSurge / maxUnavailable) or
Recreate, keeping revision history for `kubectl rollout undo|history`.

Each sync does one step and returns; the ReplicaSet status changes it causes bring the
Deployment back. ReplicaSets this controller just wrote are remembered until the informer
catches up, so a step is never taken twice on a stale cache.
"""

from __future__ import annotations

import asyncio
import copy
import logging

from bosun.client.errors import ApiError
from bosun.client.workqueue import run_workers
from bosun.component import ComponentContext
from bosun.controllers import deployment_status as dstatus
from bosun.controllers import deployment_util as du
from bosun.controllers._common import (
    PODS,
    Controller,
    Obj,
    condition,
    controller_ref,
    index_by_controller_uid,
    is_controlled_by,
    is_terminating,
    key_of,
    labels_of,
    owner_ref,
    resource,
    selector_of,
    split_key,
    template_hash,
)

log = logging.getLogger(__name__)

DEPLOYMENTS = resource("apps", "v1", "deployments")
RS = resource("apps", "v1", "replicasets")


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class DeploymentController(Controller):
    name = "deployment"
    workers = 5  # kube-controller-manager's --concurrent-deployment-syncs: a 5-service stack rolls out at once

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.d_inf = ctx.informers.get(DEPLOYMENTS)
        self.rs_inf = ctx.informers.get(RS)
        self.pod_inf = ctx.informers.get(PODS)
        index_by_controller_uid(self.pod_inf)
        self._written: dict[str, Obj] = {}  # uid -> ReplicaSet as we last wrote it
        self.d_inf.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.rs_inf.add_handler(self._rs_changed, self._rs_updated, self._rs_deleted)
        self.pod_inf.add_handler(on_delete=self._pod_deleted)

    async def run(self) -> None:
        """The skeleton's run, but waiting for *our* informers: SharedInformers.start() only
        waits for informers it started itself, so a component that starts second could act
        on an empty pod cache (and create every pod again) after a restart."""
        await self.ctx.informers.start()
        await asyncio.gather(*(inf.wait_synced(60) for inf in (self.d_inf, self.rs_inf, self.pod_inf)))
        try:
            await run_workers(self.queue, self.reconcile, self.workers)
        finally:
            self.queue.shutdown()

    # ---- event handlers ------------------------------------------------------------------

    def _rs_changed(self, rs: Obj) -> None:
        written = self._written.get(rs["metadata"].get("uid", ""))
        if written is not None and _rv(rs) >= _rv(written):
            self._written.pop(rs["metadata"]["uid"], None)
        ref = controller_ref(rs)
        if ref is not None:
            self.enqueue_owner(rs, "Deployment")
            return
        ns = rs["metadata"].get("namespace")
        for d in self.d_inf.list(ns):
            if selector_of(d).matches(labels_of(rs)):
                self.enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or new_ref.get("uid") != old_ref.get("uid")):
            self.enqueue_owner(old, "Deployment")
        self._rs_changed(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self._written.pop(rs["metadata"].get("uid", ""), None)
        self.enqueue_owner(rs, "Deployment")

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for the last old pod to go: its deletion wakes the Deployment."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_inf.get(pod["metadata"].get("namespace"), ref["name"])
        if rs is not None:
            self.enqueue_owner(rs, "Deployment")

    # ---- reads and writes ----------------------------------------------------------------

    def _fresh(self, rs: Obj) -> Obj:
        written = self._written.get(rs["metadata"].get("uid", ""))
        return written if written is not None and _rv(written) > _rv(rs) else rs

    async def _write_rs(self, rs: Obj) -> Obj:
        out = await self.client.update(RS, rs)
        self._written[out["metadata"]["uid"]] = out
        return out

    async def _claim(self, d: Obj) -> list[Obj]:
        """The Deployment's ReplicaSets, after adopting matching orphans and releasing
        owned ones whose labels stopped matching."""
        sel = selector_of(d)
        uid = d["metadata"]["uid"]
        out = []
        for rs in self.rs_inf.list(d["metadata"].get("namespace")):
            rs = self._fresh(rs)
            ref = controller_ref(rs)
            matches = sel.matches(labels_of(rs))
            if ref is not None and ref.get("uid") == uid:
                if matches:
                    out.append(rs)
                elif not is_terminating(rs):
                    await self._patch_owner(rs, [{"$patch": "delete", "uid": uid}])
            elif ref is None and matches and not is_terminating(rs) and not is_terminating(d):
                adopted = await self._patch_owner(rs, [owner_ref(d)])
                if adopted is not None:
                    out.append(adopted)
        return out

    async def _patch_owner(self, rs: Obj, refs: list[Obj]) -> Obj | None:
        m = rs["metadata"]
        try:
            out = await self.client.patch(RS, m["name"], {"metadata": {"ownerReferences": refs, "uid": m["uid"]}},
                                          m.get("namespace"), patch_type="strategic")
        except ApiError as exc:
            if exc.status in (404, 409, 422):
                return None
            raise
        self._written[out["metadata"]["uid"]] = out
        return out

    async def _scale(self, d: Obj, rs: Obj, size: int, *, annotate: bool = True) -> Obj:
        old = du.spec_replicas(rs)
        new = copy.deepcopy(rs)
        changed = annotate and du.set_replicas_annotations(d, new)
        if old == size and not changed:
            return rs
        new["spec"]["replicas"] = size
        out = await self._write_rs(new)
        if old != size:
            verb = "up" if size > old else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {verb} replica set {rs['metadata']['name']} to {size}")
        return out

    async def _write_status(self, d: Obj, status: Obj) -> None:
        if status == (d.get("status") or {}):
            return
        try:
            await self.client.update(DEPLOYMENTS, {**d, "status": status}, subresource="status")
        except ApiError as exc:
            if exc.status == 409:
                self.queue.add_rate_limited(key_of(d))  # after the informer catches up
            elif exc.status != 404:
                raise

    # ---- the sync --------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.d_inf.get(ns, name)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        if selector_of(d).empty:
            self.recorder.event(d, "Warning", "SelectingAll", "This deployment is selecting all pods. "
                                "A non-empty selector is required.")
            return
        rses = await self._claim(d)
        if is_terminating(d):
            new_rs = du.find_new(d, rses)
            await self._write_status(d, dstatus.calculate(d, rses, new_rs))
            return
        d = await self._check_paused(d)
        spec = d.get("spec") or {}
        if spec.get("paused") or du.is_scaling_event(d, rses):
            await self._sync(d, rses)
        elif du.is_rolling(d):
            await self._rolling(d, rses)
        else:
            await self._recreate(d, rses)

    async def _check_paused(self, d: Obj) -> Obj:
        if not dstatus.has_deadline(d):
            return d
        cond = condition(d, "Progressing")
        paused = bool(d["spec"].get("paused"))
        status = copy.deepcopy(d.get("status") or {})
        if paused and (cond is None or cond.get("reason") != dstatus.PAUSED):
            dstatus.put_condition(status, "Progressing", "Unknown", dstatus.PAUSED, "Deployment is paused")
        elif not paused and cond is not None and cond.get("reason") == dstatus.PAUSED:
            dstatus.put_condition(status, "Progressing", "Unknown", dstatus.RESUMED, "Deployment is resumed")
        else:
            return d
        out: Obj = await self.client.update(DEPLOYMENTS, {**d, "status": status}, subresource="status")
        return out

    async def _new_and_old(self, d: Obj, rses: list[Obj], create: bool) -> tuple[Obj | None, list[Obj], Obj]:
        """The new ReplicaSet (created if asked and missing, revision raised if reused) and the
        old ones; returns the Deployment as updated on the way."""
        new_rs = du.find_new(d, rses)
        olds = [rs for rs in rses if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        next_revision = du.max_revision(olds) + 1
        status = copy.deepcopy(d.get("status") or {})
        if new_rs is not None:
            updated = copy.deepcopy(new_rs)
            changed = du.set_rs_annotations(d, updated, next_revision)
            mrs = int(d["spec"].get("minReadySeconds") or 0)
            if int(updated["spec"].get("minReadySeconds") or 0) != mrs:
                updated["spec"]["minReadySeconds"] = mrs
                changed = True
            if changed:
                new_rs = await self._write_rs(updated)
            if dstatus.has_deadline(d) and condition(d, "Progressing") is None:
                dstatus.put_condition(status, "Progressing", "True", "FoundNewReplicaSet",
                                      f'Found new replica set "{new_rs["metadata"]["name"]}"')
        elif create:
            new_rs = await self._create_new(d, rses, olds, next_revision, status)
            if new_rs is None:
                return None, olds, d
        else:
            return None, olds, d
        d = await self._sync_revision(d, du.revision(new_rs))
        if status != (d.get("status") or {}):
            d = await self.client.update(DEPLOYMENTS, {**d, "status": status}, subresource="status")
        return new_rs, olds, d

    async def _create_new(self, d: Obj, rses: list[Obj], olds: list[Obj], next_revision: int,
                          status: Obj) -> Obj | None:
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        pod_hash = template_hash(du.without_hash(d["spec"]["template"]), collisions)
        size = du.new_rs_replicas(d, olds, None)
        body = du.new_replicaset(d, pod_hash, size, next_revision)
        try:
            new_rs = await self.client.create(RS, body, d["metadata"].get("namespace"))
        except ApiError as exc:
            if exc.status != 409 or exc.reason != "AlreadyExists":
                raise
            existing = await self.client.get(RS, body["metadata"]["name"], d["metadata"].get("namespace"))
            if is_controlled_by(existing, d) and du.equal_ignore_hash(existing["spec"]["template"],
                                                                      d["spec"]["template"]):
                return existing
            status["collisionCount"] = collisions + 1  # a namesake with another template: rehash
            await self.client.update(DEPLOYMENTS, {**d, "status": status}, subresource="status")
            raise
        self._written[new_rs["metadata"]["uid"]] = new_rs
        if size > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {new_rs['metadata']['name']} to {size}")
        if dstatus.has_deadline(d):
            dstatus.put_condition(status, "Progressing", "True", "NewReplicaSetCreated",
                                  f'Created new replica set "{new_rs["metadata"]["name"]}"')
        return new_rs

    async def _sync_revision(self, d: Obj, rev: int) -> Obj:
        ann = du.annotations_of(d)
        if ann.get(du.REVISION) == str(rev):
            return d
        ann[du.REVISION] = str(rev)
        body = copy.deepcopy(d)
        body["metadata"]["annotations"] = ann
        out: Obj = await self.client.update(DEPLOYMENTS, body)
        return out

    async def _finish(self, d: Obj, new_rs: Obj | None, olds: list[Obj]) -> None:
        """Write the rollout status and come back when the progress deadline would pass."""
        all_rses = [rs for rs in [new_rs, *olds] if rs is not None]
        st = dstatus.rollout_status(d, all_rses, new_rs)
        await self._write_status(d, st)
        after = dstatus.stuck_requeue_after(d, st)
        if after is not None:
            self.queue.add_after(key_of(d), after)

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        for rs in du.history_to_delete(d, olds):
            try:
                await self.client.delete(RS, rs["metadata"]["name"], rs["metadata"].get("namespace"),
                                         preconditions={"uid": rs["metadata"]["uid"]})
            except ApiError as exc:
                if exc.status not in (404, 409):
                    raise

    async def _sync(self, d: Obj, rses: list[Obj]) -> None:
        """A resize or a paused Deployment: scale, no rollout."""
        new_rs, olds, d = await self._new_and_old(d, rses, create=False)
        sizes = du.proportional_sizes(d, new_rs, olds)
        for rs in [r for r in [new_rs, *olds] if r is not None]:
            size = sizes.get(rs["metadata"]["name"], du.spec_replicas(rs))
            if size != du.spec_replicas(rs) or du.spec_replicas(rs) > 0:
                updated = await self._scale(d, rs, size)
                if new_rs is not None and rs is new_rs:
                    new_rs = updated
                else:
                    olds = [updated if o is rs else o for o in olds]
        if d["spec"].get("paused"):
            await self._cleanup(d, olds)
        all_rses = [rs for rs in [new_rs, *olds] if rs is not None]
        await self._write_status(d, dstatus.calculate(d, all_rses, new_rs))

    async def _rolling(self, d: Obj, rses: list[Obj]) -> None:
        new_rs, olds, d = await self._new_and_old(d, rses, create=True)
        if new_rs is None:
            return
        want = du.spec_replicas(d)
        size = du.spec_replicas(new_rs)
        target = want if size > want else du.new_rs_replicas(d, [new_rs, *olds], new_rs)
        if target != size:
            new_rs = await self._scale(d, new_rs, target)
            await self._finish(d, new_rs, olds)
            return
        downs = du.old_rs_scale_down(d, new_rs, olds)
        if downs:
            olds = [await self._scale(d, rs, downs[rs["metadata"]["name"]]) if rs["metadata"]["name"] in downs
                    else rs for rs in olds]
            await self._finish(d, new_rs, olds)
            return
        st = dstatus.calculate(d, [new_rs, *olds], new_rs)
        if dstatus.complete(d, st):
            await self._cleanup(d, olds)
        await self._finish(d, new_rs, olds)

    async def _recreate(self, d: Obj, rses: list[Obj]) -> None:
        new_rs, olds, d = await self._new_and_old(d, rses, create=False)
        active_olds = [rs for rs in olds if du.spec_replicas(rs) > 0]
        if active_olds:
            olds = [await self._scale(d, rs, 0) if du.spec_replicas(rs) > 0 else rs for rs in olds]
            await self._finish(d, new_rs, olds)
            return
        if self._old_pods_running(olds):
            await self._finish(d, new_rs, olds)
            return
        if new_rs is None:
            new_rs, olds, d = await self._new_and_old(d, rses, create=True)
            if new_rs is None:
                return
        if du.spec_replicas(new_rs) != du.spec_replicas(d):
            new_rs = await self._scale(d, new_rs, du.spec_replicas(d))
        elif dstatus.complete(d, dstatus.calculate(d, [new_rs, *olds], new_rs)):
            await self._cleanup(d, olds)
        await self._finish(d, new_rs, olds)

    def _old_pods_running(self, olds: list[Obj]) -> bool:
        if any(du.status_int(rs, "replicas") > 0 for rs in olds):
            return True
        return any((pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                   for rs in olds for pod in self.pod_inf.by_index("controller-uid", rs["metadata"]["uid"]))


async def run(ctx: ComponentContext) -> None:
    await DeploymentController(ctx).run()
