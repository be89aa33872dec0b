"""A service's autoscaler (``bosun service update --autoscale-min/--autoscale-max/--autoscale-cpu``):
the HorizontalPodAutoscaler named after the service, created on first use and changed in
place afterwards (a flag left out keeps the autoscaler's current value)."""

from __future__ import annotations

from typing import Any

from bosun.api.kinds import must_by_plural
from bosun.client.rest import ApiError, Client
from bosun.compose.errors import ComposeError
from bosun.compose.translate import autoscale
from bosun.compose.translate.context import SERVICE_KEY, STACK_LABEL
from bosun.swarm.services import ServiceRef

JSON = dict[str, Any]
HPAS = must_by_plural("autoscaling", "v2", "horizontalpodautoscalers")


class CannotAutoscale(Exception):
    """The service or the flags do not make an autoscaler (one line for the user)."""


def _current_cpu(spec: JSON) -> int | None:
    for m in spec.get("metrics") or []:
        target = ((m.get("resource") or {}).get("target") or {})
        if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu" \
                and target.get("averageUtilization") is not None:
            return int(target["averageUtilization"])
    return None


async def set_autoscaler(client: Client, svc: ServiceRef, lo: int | None, hi: int | None,
                         cpu: int | None) -> str:
    """Create or change the service's HPA; returns "created" or "updated"."""
    kind = svc.kind.resource.kind
    if kind != "Deployment":
        raise CannotAutoscale(f"service {svc.display} runs as a {kind}: only replicated services can autoscale")
    try:
        current: JSON | None = await client.get(HPAS, svc.name, svc.namespace)
    except ApiError as e:
        if not e.not_found:
            raise
        current = None
    spec = (current or {}).get("spec") or {}
    if hi is None and current is None:
        raise CannotAutoscale("--autoscale-max is needed to start autoscaling a service")
    lo = lo if lo is not None else int(spec.get("minReplicas") or 1)
    hi = hi if hi is not None else int(spec.get("maxReplicas") or lo)
    cpu = cpu if cpu is not None else (_current_cpu(spec) or autoscale.DEFAULT_CPU)
    try:
        wanted = autoscale.spec(lo, hi, cpu, "Deployment", svc.name, "--autoscale")
    except ComposeError as e:
        raise CannotAutoscale(str(e).replace("--autoscale.", "--autoscale-")) from None
    if current is None:
        labels = {SERVICE_KEY: svc.name, **({STACK_LABEL: svc.stack} if svc.stack else {})}
        await client.create(HPAS, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                   "metadata": {"name": svc.name, "namespace": svc.namespace, "labels": labels},
                                   "spec": wanted}, svc.namespace)
        return "created"
    others = [m for m in spec.get("metrics") or [] if _current_cpu({"metrics": [m]}) is None]
    wanted["metrics"] = wanted["metrics"] + others
    await client.update(HPAS, dict(current, spec={**spec, **wanted}))
    return "updated"
