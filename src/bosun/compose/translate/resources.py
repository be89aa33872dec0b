"""deploy.resources (and the service-level cpus/mem_limit/mem_reservation) as the
container's limits and requests. Docker's memory units are binary, so ``256M`` is 256Mi."""

from __future__ import annotations

from typing import Any

from bosun.compose import units
from bosun.compose.translate.context import JSON, Service


def _cpu(value: Any) -> str:
    millis = round(float(value) * 1000)
    return f"{millis}m"


def memory(n: int) -> str:
    """Bytes as the largest exact binary unit (268435456 -> 256Mi), as people write them."""
    for suffix, power in (("Gi", 3), ("Mi", 2), ("Ki", 1)):
        if n and n % 1024**power == 0:
            return f"{n // 1024**power}{suffix}"
    return str(n)


def _quantities(svc: Service, spec: JSON, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if spec.get("cpus") not in (None, ""):
        out["cpu"] = _cpu(spec["cpus"])
    if spec.get("memory") not in (None, ""):
        out["memory"] = memory(units.size_bytes(spec["memory"], f"{svc.where}.{where}.memory"))
    for key in ("pids", "devices", "generic_resources"):
        if spec.get(key):
            svc.warn(f"{where}.{key}", "not supported; ignored")
    return out


class Resources:
    fields = frozenset({"cpus", "mem_limit", "mem_reservation", "pids_limit"})

    def apply(self, svc: Service) -> list[JSON]:
        res = dict(svc.deploy.get("resources") or {})
        limits = _quantities(svc, dict(res.get("limits") or {}), "deploy.resources.limits")
        requests = _quantities(svc, dict(res.get("reservations") or {}), "deploy.resources.reservations")
        spec = svc.spec
        if spec.get("cpus") not in (None, "", 0) and "cpu" not in limits:
            limits["cpu"] = _cpu(spec["cpus"])
        if spec.get("mem_limit") and "memory" not in limits:
            limits["memory"] = memory(units.size_bytes(spec["mem_limit"], f"{svc.where}.mem_limit"))
        if spec.get("mem_reservation") and "memory" not in requests:
            requests["memory"] = memory(units.size_bytes(spec["mem_reservation"], f"{svc.where}.mem_reservation"))
        if spec.get("pids_limit"):
            svc.warn("pids_limit", "not supported; the node's default pids limit applies")
        out: JSON = {}
        if limits:
            out["limits"] = limits
        if requests:
            out["requests"] = requests
        if out:
            svc.container["resources"] = out
        return []
