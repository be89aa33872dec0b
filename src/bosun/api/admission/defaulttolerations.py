"""Kubernetes' DefaultTolerationSeconds admission: every new pod tolerates the
``not-ready`` and ``unreachable`` NoExecute taints for a bounded time.

Upstream adds 300 s; Bosun adds its node lifecycle's eviction timeout, so what a pod shows
in ``kubectl get pod -o yaml`` is exactly when it will be evicted from a failed node, and
a user who wants another bound writes their own toleration (which is then left alone).
"""

from __future__ import annotations

from typing import Any

from bosun.api.admission.base import Request
from bosun.api.admission.newpod import NewPodMutation

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def _covers(toleration: object, key: str) -> bool:
    """Whether the pod already says how long it tolerates ``key`` (upstream's test: the same
    key, or none with operator Exists, and effect NoExecute or any)."""
    if not isinstance(toleration, dict):
        return False
    if toleration.get("effect") not in (None, "", "NoExecute"):
        return False
    tkey = toleration.get("key") or ""
    return tkey == key or (not tkey and toleration.get("operator") == "Exists")


class DefaultTolerationSeconds(NewPodMutation):
    name = "DefaultTolerationSeconds"

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    async def admit_spec(self, req: Request, spec: dict[str, Any]) -> None:
        tolerations = spec.get("tolerations")
        if not isinstance(tolerations, list):
            tolerations = []
        added = [
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": self.seconds}
            for key in (NOT_READY, UNREACHABLE)
            if not any(_covers(t, key) for t in tolerations)
        ]
        if added:
            spec["tolerations"] = [*tolerations, *added]
