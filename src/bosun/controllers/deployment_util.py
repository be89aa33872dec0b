"""Pure arithmetic of the Deployment controller, as Kubernetes' deployment/util: surge and
unavailability fenceposts, revisions, which ReplicaSet is "new", how far to scale each one
during a rolling update or a resize, and which old ones history may drop.

Nothing here talks to the API, so every rule can be tested on plain dicts."""

from __future__ import annotations

import copy
import math
from typing import Any

from bosun.controllers._common import parse_time

Obj = dict[str, Any]
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Deployment annotations that are not copied onto its ReplicaSets (kubectl skips the same
# ones when it copies a ReplicaSet's annotations back on rollback).
SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED, MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
})


def spec_replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1) or 0)


def status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def revision(rs: Obj) -> int:
    try:
        return int(annotations_of(rs).get(REVISION, "0"))
    except ValueError:
        return 0


def created(rs: Obj) -> tuple[float, str]:
    """Sort key: creation time, then name (Kubernetes' ReplicaSetsByCreationTimestamp)."""
    t = parse_time((rs.get("metadata") or {}).get("creationTimestamp"))
    return (t.timestamp() if t else 0.0, str(rs["metadata"].get("name")))


# ---- fenceposts --------------------------------------------------------------------------

def _scaled(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers: surge rounds up, unavailable rounds down, and
    both zero becomes unavailable 1 so that a rollout can always make progress."""
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    total = spec_replicas(d)
    surge = _scaled(ru.get("maxSurge", "25%"), total, True)
    unavailable = _scaled(ru.get("maxUnavailable", "25%"), total, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or spec_replicas(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], spec_replicas(d))


# ---- templates and the new ReplicaSet ----------------------------------------------------

def _drop_nulls(value: Any) -> Any:
    """Semantic equality as Kubernetes' (kubectl sends ``creationTimestamp: null`` in the
    template it restores on rollback; a null and a missing field mean the same)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def without_hash(template: Obj) -> Obj:
    t: Obj = _drop_nulls(copy.deepcopy(template or {}))
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return t


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return without_hash(a) == without_hash(b)


def find_new(d: Obj, rses: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (ignoring the hash label)."""
    tmpl = (d.get("spec") or {}).get("template") or {}
    same = [rs for rs in rses if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, tmpl)]
    return min(same, key=created) if same else None


def max_revision(rses: list[Obj]) -> int:
    return max((revision(rs) for rs in rses), default=0)


def copyable_annotations(d: Obj) -> dict[str, str]:
    return {k: v for k, v in annotations_of(d).items() if k not in SKIPPED_ANNOTATIONS}


def set_rs_annotations(d: Obj, rs: Obj, new_revision: int) -> bool:
    """Copy the Deployment's annotations onto its new ReplicaSet and raise its revision
    (remembering the old one in revision-history, as Kubernetes). Returns whether anything changed.
    The desired/max replica annotations are left alone: they record the size the ReplicaSet
    was last scaled for, which proportional scaling needs."""
    meta = rs.setdefault("metadata", {})
    before = dict(meta.get("annotations") or {})
    ann = dict(before)
    ann.update(copyable_annotations(d))
    old = revision(rs)
    if old < new_revision:
        if old > 0:
            history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
            ann[REVISION_HISTORY] = ",".join([*history, str(old)])
        ann[REVISION] = str(new_revision)
    meta["annotations"] = ann
    return ann != before


def set_replicas_annotations(d: Obj, rs: Obj) -> bool:
    meta = rs.setdefault("metadata", {})
    ann = dict(meta.get("annotations") or {})
    want = {DESIRED: str(spec_replicas(d)), MAX_REPLICAS: str(spec_replicas(d) + max_surge(d))}
    if all(ann.get(k) == v for k, v in want.items()):
        return False
    meta["annotations"] = {**ann, **want}
    return True


def new_replicaset(d: Obj, pod_hash: str, replicas: int, new_revision: int) -> Obj:
    spec = d.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
    m = d["metadata"]
    rs: Obj = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{m['name']}-{pod_hash}", "namespace": m.get("namespace"),
                     "labels": dict(template["metadata"]["labels"]),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": m["name"],
                                          "uid": m["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }
    set_rs_annotations(d, rs, new_revision)
    set_replicas_annotations(d, rs)
    return rs


# ---- rolling update ----------------------------------------------------------------------

def rs_size(rs: Obj) -> int:
    """Pods a ReplicaSet counts against the surge: its target, as Kubernetes'
    GetReplicaCountForReplicaSets. Its status would only add the ReplicaSet controller's
    delay in deleting what a scale-down asked for (pods it marks for deletion stop counting
    in the status at once anyway), a round trip on each batch of a rolling update; the
    target this controller wrote is never stale (see DeploymentController._fresh)."""
    return spec_replicas(rs)


def rs_available(rs: Obj) -> int:
    """Available pods we may count on: never more than the target, since pods above it are
    about to be deleted."""
    return min(status_int(rs, "availableReplicas"), spec_replicas(rs))


def new_rs_replicas(d: Obj, all_rses: list[Obj], new_rs: Obj | None) -> int:
    """How big the new ReplicaSet may be now (Kubernetes' NewRSNewReplicas)."""
    want = spec_replicas(d)
    if not is_rolling(d):
        return want
    current_new = spec_replicas(new_rs) if new_rs is not None else 0
    if current_new >= want:
        return want
    current = sum(rs_size(rs) for rs in all_rses)
    allowed = want + max_surge(d) - current
    if allowed <= 0:
        return current_new
    return current_new + min(allowed, want - current_new)


def old_rs_scale_down(d: Obj, new_rs: Obj, old_rses: list[Obj]) -> dict[str, int]:
    """New sizes for old ReplicaSets, respecting maxUnavailable: first unhealthy pods, then
    healthy ones from the oldest ReplicaSet (Kubernetes' reconcileOldReplicaSets)."""
    olds = sorted((rs for rs in old_rses if spec_replicas(rs) > 0), key=created)
    if not olds:
        return {}
    sizes = {rs["metadata"]["name"]: spec_replicas(rs) for rs in olds}
    all_pods = sum(spec_replicas(rs) for rs in [*olds, new_rs])
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - rs_available(new_rs)
    budget = all_pods - min_available - new_unavailable
    if budget <= 0:
        return {}
    for rs in olds:  # pods that are not available cost no availability to remove
        if budget <= 0:
            break
        name = rs["metadata"]["name"]
        unhealthy = sizes[name] - rs_available(rs)
        cut = min(max(unhealthy, 0), budget)
        sizes[name] -= cut
        budget -= cut
    available = rs_available(new_rs) + sum(min(rs_available(rs), sizes[rs["metadata"]["name"]]) for rs in olds)
    room = min(available - min_available, budget)
    for rs in olds:
        if room <= 0:
            break
        name = rs["metadata"]["name"]
        cut = min(sizes[name], room)
        sizes[name] -= cut
        room -= cut
    return {k: v for k, v in sizes.items() if v != spec_replicas(next(r for r in olds if r["metadata"]["name"] == k))}


# ---- resizing (kubectl scale during or after a rollout) ----------------------------------

def desired_annotation(rs: Obj) -> int | None:
    try:
        return int(annotations_of(rs)[DESIRED])
    except (KeyError, ValueError):
        return None


def is_scaling_event(d: Obj, rses: list[Obj]) -> bool:
    for rs in rses:
        if spec_replicas(rs) > 0:
            want = desired_annotation(rs)
            if want is not None and want != spec_replicas(d):
                return True
    return False


def proportional_sizes(d: Obj, new_rs: Obj | None, old_rses: list[Obj]) -> dict[str, int]:
    """Target size of every ReplicaSet after a resize (Kubernetes' scale()): the only active
    one takes the whole size; a saturated new one leaves the old at zero; otherwise the
    change is shared in proportion to each ReplicaSet's size."""
    want = spec_replicas(d)
    everyone = ([new_rs] if new_rs is not None else []) + old_rses
    active = [rs for rs in everyone if spec_replicas(rs) > 0]
    if len(active) <= 1:
        target = active[0] if active else (new_rs or (max(old_rses, key=created) if old_rses else None))
        return {target["metadata"]["name"]: want} if target is not None else {}
    if new_rs is not None and spec_replicas(new_rs) == want and status_int(new_rs, "availableReplicas") == want:
        return {rs["metadata"]["name"]: 0 for rs in old_rses if spec_replicas(rs) > 0}
    if not is_rolling(d):
        return {}
    allowed = want + max_surge(d) if want > 0 else 0
    total = sum(spec_replicas(rs) for rs in active)
    to_add = allowed - total
    if to_add == 0:
        return {}
    # biggest first (newest first among equals when growing, oldest first when shrinking)
    if to_add > 0:
        active.sort(key=lambda rs: (-spec_replicas(rs), -created(rs)[0], rs["metadata"]["name"]))
    else:
        active.sort(key=lambda rs: (-spec_replicas(rs), created(rs)[0], rs["metadata"]["name"]))
    sizes: dict[str, int] = {}
    added = 0
    for rs in active:
        size = spec_replicas(rs)
        annotated = _int(annotations_of(rs).get(MAX_REPLICAS)) or status_int(d, "replicas") or total
        fraction = round(size * allowed / annotated) - size if want > 0 else -size
        left = to_add - added
        share = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rs["metadata"]["name"]] = size + share
        added += share
    first = active[0]["metadata"]["name"]
    sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


# ---- history -----------------------------------------------------------------------------

def history_to_delete(d: Obj, old_rses: list[Obj]) -> list[Obj]:
    """Old, empty ReplicaSets beyond revisionHistoryLimit, lowest revisions first."""
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rses if not (rs.get("metadata") or {}).get("deletionTimestamp")]
    extra = len(alive) - int(limit)
    if extra <= 0:
        return []
    alive.sort(key=lambda rs: (revision(rs), created(rs)))
    out = []
    for rs in alive[:extra]:
        if spec_replicas(rs) == 0 and status_int(rs, "replicas") == 0 \
                and status_int(rs, "observedGeneration") >= int(rs["metadata"].get("generation") or 1):
            out.append(rs)
    return out
