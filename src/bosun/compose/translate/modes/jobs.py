"""``replicated-job`` and ``global-job``: Jobs. A replicated job completes ``replicas``
times, at most ``x-max-concurrent`` at once (Docker's ``--max-concurrent``); a global job
once per node (one completion per node, at most one task per node)."""

from __future__ import annotations

from bosun.compose import normalize
from bosun.compose.translate import restart
from bosun.compose.translate.context import JSON, Service
from bosun.compose.translate.modes import common


def _job(svc: Service, template: JSON, completions: int, parallelism: int) -> JSON:
    rp = restart.policy(svc, default="on-failure")
    if rp.condition == "any":
        svc.warn("deploy.restart_policy.condition", "any: a job's tasks are restarted on failure only")
    template["spec"]["restartPolicy"] = "Never" if rp.condition == "none" else "OnFailure"
    spec: JSON = {"completions": completions, "parallelism": parallelism, "template": template}
    spec["backoffLimit"] = 0 if rp.condition == "none" else (rp.max_attempts if rp.max_attempts is not None else 6)
    if svc.deploy.get("update_config"):
        svc.warn("deploy.update_config", "ignored: a job is replaced whole when it changes")
    return common.workload("batch/v1", "Job", svc, spec)


MAX_CONCURRENT = "x-max-concurrent"  # `service create --max-concurrent`, a compose extension field


class ReplicatedJob:
    def workload(self, svc: Service, template: JSON) -> JSON:
        n = common.replicas(svc)
        limit = svc.deploy.get(MAX_CONCURRENT)
        parallelism = min(n, normalize.to_int(limit, f"{svc.where}.deploy.{MAX_CONCURRENT}")) if limit else n
        return _job(svc, template, n, parallelism)


class GlobalJob:
    def workload(self, svc: Service, template: JSON) -> JSON:
        n = max(svc.stack.nodes, 1)
        spec = template["spec"]
        spec.setdefault("affinity", {})["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": svc.selector()}}]}
        return _job(svc, template, n, n)
