"""Disruption controller: keeps each PodDisruptionBudget's status counting its pods.

The eviction API decides from the budget's status alone (:mod:`bosun.api.eviction`), so
this controller's job is the counting: how many pods the budget expects (from their
controllers' replica counts when the budget is a percentage or ``maxUnavailable``, as
upstream), how many must stay healthy, how many are healthy now, and so how many
disruptions are allowed. Pods an eviction took are listed in ``disruptedPods`` until they
are seen going (or two minutes pass), so they are not counted twice.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from datetime import timedelta

from bosun.api.selectors import SelectorError, label_selector_from_dict
from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import (
    PODS,
    Controller,
    Obj,
    controller_ref,
    is_pod_ready,
    is_terminating,
    now,
    parse_time,
    resource,
    rfc3339,
    split_key,
)

log = logging.getLogger(__name__)

PDBS = resource("policy", "v1", "poddisruptionbudgets")
RS = resource("apps", "v1", "replicasets")
SCALED = {
    "ReplicaSet": RS,
    "Deployment": resource("apps", "v1", "deployments"),
    "StatefulSet": resource("apps", "v1", "statefulsets"),
    "ReplicationController": resource("", "v1", "replicationcontrollers"),
}
# Upstream's DeletionTimeout: an evicted pod not seen going by then counts again.
DELETION_TIMEOUT = timedelta(minutes=2)


class _NoScale(Exception):
    """The budget's expected pod count cannot be known (a pod without a known controller)."""


class DisruptionController(Controller):
    name = "disruption"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.pdb_inf = ctx.informers.get(PDBS)
        self.pod_inf = ctx.informers.get(PODS)
        self.scaled = {kind: ctx.informers.get(res) for kind, res in SCALED.items()}
        self.pdb_inf.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.pod_inf.add_handler(self._pod_changed, lambda _o, n: self._pod_changed(n), self._pod_changed)

    async def run(self) -> None:
        await self.ctx.informers.start()
        await asyncio.gather(*(inf.wait_synced(60) for inf in (self.pdb_inf, self.pod_inf, *self.scaled.values())))
        await super().run()

    def _pod_changed(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        for pdb in self.pdb_inf.list(ns):
            if _selects(pdb, labels):
                self.enqueue(pdb)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.pdb_inf.get(ns, name)
        if cached is None:
            return
        pdb = copy.deepcopy(cached)
        pods = [p for p in self.pod_inf.list(ns) if _selects(pdb, p["metadata"].get("labels") or {})]
        status = dict(pdb.get("status") or {})
        status["observedGeneration"] = pdb["metadata"].get("generation", 1)
        try:
            expected, desired = self._expected(pdb, pods)
        except _NoScale as exc:
            self.recorder.event(pdb, "Warning", "CalculateExpectedPodCountFailed",
                                f"Failed to calculate the number of expected pods: {exc}")
            status.update(disruptionsAllowed=0)
            _allowed_condition(status, "False", "SyncFailed", str(exc))
            await self._write(key, pdb, status)
            return
        disrupted, recheck = self._still_disrupted(pdb, pods)
        healthy = sum(1 for p in pods if is_pod_ready(p) and not is_terminating(p)
                      and p["metadata"]["name"] not in disrupted)
        allowed = max(0, healthy - desired)
        status.update(currentHealthy=healthy, desiredHealthy=desired, expectedPods=expected,
                      disruptionsAllowed=allowed)
        if disrupted:
            status["disruptedPods"] = disrupted
        else:
            status.pop("disruptedPods", None)
        if allowed > 0:
            _allowed_condition(status, "True", "SufficientPods", "")
        else:
            _allowed_condition(status, "False", "InsufficientPods", "")
        await self._write(key, pdb, status)
        if recheck is not None:
            self.queue.add_after(key, recheck)

    def _expected(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int]:
        """(expected pods, pods that must stay healthy), as upstream's getExpectedPodCount."""
        spec = pdb.get("spec") or {}
        max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
        if max_unavailable is not None:
            expected = self._scale(pods)
            return expected, max(0, expected - _resolve(max_unavailable, expected))
        if isinstance(min_available, int):
            return len(pods), min_available
        if isinstance(min_available, str):
            expected = self._scale(pods)
            return expected, _resolve(min_available, expected)
        return len(pods), 0

    def _scale(self, pods: list[Obj]) -> int:
        """The sum of the replica counts of the pods' controllers (a Deployment's, for the
        pods of its ReplicaSets)."""
        counted: dict[str, int] = {}
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                raise _NoScale(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            owner = self._owner(ref, pod["metadata"].get("namespace"))
            if owner is None:
                raise _NoScale(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            if owner.get("kind") == "ReplicaSet":
                parent = controller_ref(owner)
                if parent is not None and parent.get("kind") == "Deployment":
                    owner = self._owner(parent, pod["metadata"].get("namespace")) or owner
            counted[owner["metadata"]["uid"]] = int((owner.get("spec") or {}).get("replicas", 1) or 0)
        return sum(counted.values())

    def _owner(self, ref: Obj, ns: str | None) -> Obj | None:
        inf = self.scaled.get(str(ref.get("kind")))
        owner = inf.get(ns, str(ref.get("name"))) if inf is not None else None
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    def _still_disrupted(self, pdb: Obj, pods: list[Obj]) -> tuple[dict[str, str], float | None]:
        """The evicted pods not yet seen going and not past the timeout, and when to look again."""
        live = {p["metadata"]["name"]: p for p in pods}
        out: dict[str, str] = {}
        recheck: float | None = None
        at = now()
        for name, when in ((pdb.get("status") or {}).get("disruptedPods") or {}).items():
            pod = live.get(name)
            started = parse_time(when)
            if pod is None or is_terminating(pod) or started is None:
                continue
            left = (started + DELETION_TIMEOUT - at).total_seconds()
            if left <= 0:
                self.recorder.event(pdb, "Warning", "NotDeleted",
                                    f"Pod {name} was expected to be deleted but it wasn't")
                continue
            out[name] = rfc3339(started)
            recheck = left if recheck is None else min(recheck, left)
        return out, recheck

    async def _write(self, key: str, pdb: Obj, status: Obj) -> None:
        if status == (pdb.get("status") or {}):
            return
        try:
            await self.client.update(PDBS, {**pdb, "status": status}, subresource="status")
        except ApiError as exc:
            if exc.status == 409:
                self.queue.add(key)  # an eviction took a disruption meanwhile: count again
            elif exc.status != 404:
                raise


def _allowed_condition(status: Obj, value: str, reason: str, message: str) -> None:
    """The DisruptionAllowed condition, in metav1.Condition's form (what the kind's schema
    holds: anything else would be dropped on write and rewritten on every sync)."""
    conds = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value else rfc3339()
    conds.append({"type": "DisruptionAllowed", "status": value, "reason": reason, "message": message,
                  "observedGeneration": status["observedGeneration"], "lastTransitionTime": since})
    status["conditions"] = conds


def _selects(pdb: Obj, labels: dict[str, str]) -> bool:
    selector = (pdb.get("spec") or {}).get("selector")
    if selector is None:
        return False
    try:
        return label_selector_from_dict(selector).matches(labels)
    except SelectorError:
        return False


def _resolve(value: int | str, total: int) -> int:
    """An int, or a percentage of ``total`` rounded up (upstream's GetScaledValueFromIntOrPercent)."""
    if isinstance(value, int):
        return value
    return math.ceil(int(value.rstrip("%")) * total / 100)


async def run(ctx: ComponentContext) -> None:
    await DisruptionController(ctx).run()
