"""``mode: global``: a DaemonSet, one task on every node the placement allows."""

from __future__ import annotations

from bosun.compose.translate import restart, updates
from bosun.compose.translate.context import JSON, Service
from bosun.compose.translate.modes import common


class Global:
    def workload(self, svc: Service, template: JSON) -> JSON:
        if "replicas" in svc.deploy:
            svc.warn("deploy.replicas", "ignored: a global service runs one task per node")
        rp = restart.policy(svc)
        if rp.condition != "any":
            svc.warn("deploy.restart_policy.condition", f"{rp.condition}: a global service's tasks always restart "
                                                        "(use mode: global-job to run once per node)")
        rolling, min_ready = updates.rolling(svc)
        spec: JSON = {"selector": {"matchLabels": svc.selector()}, "template": template,
                      "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling}}
        if min_ready:
            spec["minReadySeconds"] = min_ready
        return common.workload("apps/v1", "DaemonSet", svc, spec)
