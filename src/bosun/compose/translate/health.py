"""healthcheck as readiness and liveness probes (exec). ``CMD-SHELL`` runs through
``sh -c`` as Docker runs it; ``start_period`` delays liveness only, so a slow start is not
killed, while readiness keeps the task out of its Service until the check passes."""

from __future__ import annotations

import copy
from typing import Any

from bosun.compose import units
from bosun.compose.translate.context import JSON, Service


def command(test: Any) -> list[str] | None:
    """The exec command of a compose ``test`` (None: the check is disabled)."""
    if isinstance(test, str):
        return ["sh", "-c", test]
    words = [str(t) for t in test or []]
    if not words or words[0] == "NONE":
        return None
    if words[0] == "CMD":
        return words[1:]
    if words[0] == "CMD-SHELL":
        return ["sh", "-c", " ".join(words[1:])]
    return words


class Health:
    fields = frozenset({"healthcheck"})

    def apply(self, svc: Service) -> list[JSON]:
        hc = svc.spec.get("healthcheck")
        if not hc or hc.get("disable"):
            return []
        cmd = command(hc.get("test"))
        if cmd is None:
            if hc.get("test") is None:
                svc.warn("healthcheck.test", "the image's own HEALTHCHECK cannot be read; no probe is set")
            return []
        where = f"{svc.where}.healthcheck"
        probe: JSON = {"exec": {"command": cmd}}
        if "interval" in hc:
            probe["periodSeconds"] = units.whole_seconds(hc["interval"], f"{where}.interval", 1)
        else:
            probe["periodSeconds"] = 30  # Docker's default interval
        probe["timeoutSeconds"] = units.whole_seconds(hc.get("timeout", "30s"), f"{where}.timeout", 1)
        probe["failureThreshold"] = int(hc.get("retries", 3))
        liveness = copy.deepcopy(probe)
        if "start_period" in hc:
            liveness["initialDelaySeconds"] = units.whole_seconds(hc["start_period"], f"{where}.start_period")
        if "start_interval" in hc:
            svc.warn("healthcheck.start_interval", "not supported; interval is used during start_period too")
        svc.container["readinessProbe"] = copy.deepcopy(probe)
        svc.container["livenessProbe"] = liveness
        return []
