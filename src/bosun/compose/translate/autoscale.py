"""``x-bosun-autoscale: {min, max, cpu}`` on a replicated service: a HorizontalPodAutoscaler
(autoscaling/v2) for its Deployment, keeping the average CPU use of its tasks at ``cpu``
percent of their reservation (``deploy.resources.reservations.cpus``: utilization needs a
request, as in Kubernetes). The Deployment is written without a replica count (it starts at
one and the autoscaler sizes it), so a re-deploy never undoes the autoscaler's work.
``bosun service update --autoscale-*`` builds the same object."""

from __future__ import annotations

from typing import Any

from bosun.compose.errors import ComposeError
from bosun.compose.translate.context import JSON, Service

KEY = "x-bosun-autoscale"
DEFAULT_CPU = 80  # percent, the HPA's own default target


def _int(value: Any, where: str) -> int:
    text = str(value).strip().removesuffix("%")
    if isinstance(value, bool) or not text.isdigit():
        raise ComposeError(f"{where} must be a whole number, not {value!r}")
    return int(text)


def spec(lo: int, hi: int, cpu: int, target_kind: str, target_name: str, where: str) -> JSON:
    """The HPA spec; bad bounds are a ComposeError naming ``where``."""
    if lo < 1:
        raise ComposeError(f"{where}.min must be at least 1, not {lo}")
    if hi < lo:
        raise ComposeError(f"{where}.max ({hi}) must be at least min ({lo})")
    if cpu < 1:
        raise ComposeError(f"{where}.cpu must be a percentage above 0, not {cpu}")
    return {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target_name},
            "minReplicas": lo, "maxReplicas": hi,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]}


def autoscaler(svc: Service, workload: JSON) -> JSON | None:
    """The service's HPA, or None when it asks for none (or cannot have one: then a warning)."""
    raw = svc.spec.get(KEY)
    if raw is None:
        return None
    where = f"{svc.where}.{KEY}"
    if not isinstance(raw, dict):
        raise ComposeError(f"{where} must be a mapping with min, max and cpu")
    if workload.get("kind") != "Deployment":
        svc.warn(KEY, f"only replicated services can autoscale (this one is a {workload.get('kind')}); ignored")
        return None
    unknown = sorted(set(raw) - {"min", "max", "cpu"})
    if unknown:
        raise ComposeError(f"{where}.{unknown[0]} is not a setting: use min, max and cpu")
    if "max" not in raw:
        raise ComposeError(f"{where}.max is required")
    lo = _int(raw.get("min", 1), f"{where}.min")
    hi = _int(raw["max"], f"{where}.max")
    cpu = _int(raw.get("cpu", DEFAULT_CPU), f"{where}.cpu")
    # The autoscaler owns the task count: a count in the file would be written back over
    # its choice at every deploy (kubectl apply has the same trap).
    if "replicas" in svc.deploy or "scale" in svc.spec:
        svc.warn("deploy.replicas", f"ignored: {KEY} decides the number of tasks")
    workload["spec"].pop("replicas", None)
    meta = svc.metadata(workload["metadata"]["name"])
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
            "spec": spec(lo, hi, cpu, "Deployment", workload["metadata"]["name"], where)}
