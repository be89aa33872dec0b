"""``mode: replicated``: a Deployment of ``replicas`` tasks, rolled as update_config says. A
service that must not restart (``restart: "no"``) runs as a Job whose tasks are not replaced."""

from __future__ import annotations

from bosun.compose.translate import restart, updates
from bosun.compose.translate.context import JSON, Service
from bosun.compose.translate.modes import common


class Replicated:
    def workload(self, svc: Service, template: JSON) -> JSON:
        n = common.replicas(svc)
        rp = restart.policy(svc)
        if rp.condition == "none":
            template["spec"]["restartPolicy"] = "Never"
            return common.workload("batch/v1", "Job", svc, {
                "completions": n, "parallelism": n, "backoffLimit": 0, "template": template})
        if rp.condition == "on-failure":
            svc.warn("deploy.restart_policy.condition", "on-failure: a replicated service's tasks are restarted "
                                                        "whatever their exit status (use a job mode to stop)")
        if rp.max_attempts is not None:
            svc.warn("deploy.restart_policy.max_attempts", "not supported for a replicated service; ignored")
        rolling, min_ready = updates.rolling(svc)
        spec: JSON = {"replicas": n, "selector": {"matchLabels": svc.selector()}, "template": template,
                      "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling}}
        if min_ready:
            spec["minReadySeconds"] = min_ready
        return common.workload("apps/v1", "Deployment", svc, spec)
