"""policy/v1 Eviction: a pod's delete that a PodDisruptionBudget may refuse.

What ``kubectl drain``, node drains and autoscalers rely on (upstream's eviction REST): a
pod that finished, never started or is already going is deleted at once; otherwise the one
budget whose selector matches it must allow a disruption, which is taken from the budget
(``disruptionsAllowed`` down by one, the pod listed in ``disruptedPods``) by a
compare-and-swap write *before* the pod is deleted, so two evictions racing for the last
allowed disruption cannot both win. A refusal is 429 TooManyRequests, which kubectl drain
retries. The disruption controller recounts the budget from the pods afterwards.
"""

from __future__ import annotations

from typing import Any

from bosun.api import errors
from bosun.api.errors import APIError
from bosun.api.objects import as_dict, now_rfc3339
from bosun.api.registry import must_by_plural
from bosun.api.selectors import SelectorError, label_selector_from_dict
from bosun.api.storage import Storage

PODS = must_by_plural("", "v1", "pods")
PDBS = must_by_plural("policy", "v1", "poddisruptionbudgets")
REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."
# Upstream's bound on disruptedPods: past it the controller is behind and evictions wait.
MAX_DISRUPTED_PODS = 2000
Obj = dict[str, Any]


def _too_many(cause: str) -> APIError:
    return APIError(429, "TooManyRequests", REFUSED,
                    details={"causes": [{"reason": "DisruptionBudget", "message": cause}]})


def _ignores_budgets(pod: Obj) -> bool:
    """Nothing a budget protects would be lost: the pod finished, never ran, or is going."""
    phase = as_dict(pod.get("status")).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in as_dict(pod.get("status")).get("conditions") or [] if isinstance(c, dict))


def _covering(budgets: list[Obj], pod: Obj) -> list[Obj]:
    labels = pod["metadata"].get("labels") or {}
    out = []
    for pdb in budgets:
        selector = as_dict(pdb.get("spec")).get("selector")
        try:
            if selector is not None and label_selector_from_dict(selector).matches(labels):
                out.append(pdb)
        except SelectorError:
            continue
    return out


async def evict(storage: Storage, namespace: str, name: str, options: Obj, dry_run: bool) -> None:
    """Delete the pod if its budget allows; raise 429 (or 500 with two budgets) if not."""
    pod = await storage.get(PODS, namespace, name)
    if not _ignores_budgets(pod):
        budgets, _, _ = await storage.list(PDBS, namespace)
        covering = _covering(budgets, pod)
        if len(covering) > 1:
            raise APIError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the "
                                                 "eviction subresource does not support.")
        if covering:
            await _take_disruption(storage, covering[0], pod, dry_run)
    uid = pod["metadata"].get("uid")
    opts = dict(options)
    if uid and "preconditions" not in opts:
        opts["preconditions"] = {"uid": uid}  # the pod the budget was checked for, not a namesake
    await storage.delete(PODS, namespace, name, options=opts, dry_run=dry_run)


async def _take_disruption(storage: Storage, pdb: Obj, pod: Obj, dry_run: bool) -> None:
    spec, status = as_dict(pdb.get("spec")), as_dict(pdb.get("status"))
    if not _ready(pod):
        # An unready pod adds nothing to the budget's healthy count.
        if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return
        desired = int(status.get("desiredHealthy") or 0)
        if desired > 0 and int(status.get("currentHealthy") or 0) >= desired:
            return
    pod_name = pod["metadata"]["name"]

    def take(current: Obj) -> Obj:
        st = as_dict(current.get("status"))
        pdb_name = current["metadata"]["name"]
        if int(st.get("observedGeneration") or 0) < int(current["metadata"].get("generation") or 1):
            raise _too_many(f"The disruption budget {pdb_name} is still being processed by the server.")
        allowed = int(st.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise errors.forbidden_request("pdb disruptions allowed is negative")
        disrupted = dict(st.get("disruptedPods") or {})
        if len(disrupted) > MAX_DISRUPTED_PODS:
            raise errors.forbidden_request("DisruptedPods map too big - too many evictions not confirmed by "
                                           "PDB controller")
        if allowed == 0:
            raise _too_many(f"The disruption budget {pdb_name} needs {int(st.get('desiredHealthy') or 0)} "
                            f"healthy pods and has {int(st.get('currentHealthy') or 0)} currently")
        disrupted[pod_name] = now_rfc3339()
        return {**current, "status": {**st, "disruptionsAllowed": allowed - 1, "disruptedPods": disrupted}}

    await storage.mutate(PDBS, pdb["metadata"].get("namespace"), pdb["metadata"]["name"], take,
                         subresource="status", dry_run=dry_run, fn_copies=True)
