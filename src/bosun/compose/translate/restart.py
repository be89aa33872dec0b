"""restart and deploy.restart_policy as one condition: ``any``, ``on-failure`` or ``none``.

deploy.restart_policy wins over restart (as in Swarm). ``restart: "no"`` really means no
restart here (Docker's stack deploy turns it into "any"), so the service's mode picks a kind
that can stop: a Job whose failed tasks are not replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from bosun.compose.translate.context import Service

_FROM_RESTART = {"no": "none", "always": "any", "unless-stopped": "any", "on-failure": "on-failure"}


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    condition: str  # any | on-failure | none
    max_attempts: int | None

    @property
    def pod_policy(self) -> str:
        return {"any": "Always", "on-failure": "OnFailure", "none": "Never"}[self.condition]


def policy(svc: Service, default: str = "any") -> RestartPolicy:
    rp = dict(svc.deploy.get("restart_policy") or {})
    restart = str(svc.spec.get("restart") or "")
    condition = default
    if restart:
        base, _, count = restart.partition(":")
        condition = _FROM_RESTART.get(base, default)
        if count and not rp.get("max_attempts"):
            rp["max_attempts"] = int(count)
    if rp.get("condition"):
        condition = str(rp["condition"])
    for key in ("delay", "window"):
        if rp.get(key):
            svc.warn(f"deploy.restart_policy.{key}", "not supported: restarts back off exponentially (10s to 5m)")
    attempts = rp.get("max_attempts")
    return RestartPolicy(condition, int(attempts) if attempts is not None else None)
