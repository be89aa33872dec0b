"""update_config and rollback_config as a rollout strategy: parallelism with ``start-first``
is maxSurge (new tasks start before old ones stop), with ``stop-first`` maxUnavailable;
``monitor`` is minReadySeconds. What Kubernetes has no field for (delay, failure_action,
max_failure_ratio, rollback_config) is kept in annotations: the server's update monitor
(bosun.controllers.updatemonitor) acts on monitor, max_failure_ratio and failure_action."""

from __future__ import annotations

import json

from bosun.compose import normalize, units
from bosun.compose.translate.context import JSON, Service

UPDATE_ANNOTATION = "bosun.io/update-config"
ROLLBACK_ANNOTATION = "bosun.io/rollback-config"


def _step(cfg: JSON, where: str) -> int | str:
    parallelism = normalize.to_int(cfg.get("parallelism", 1), f"{where}.parallelism")
    return "100%" if parallelism == 0 else parallelism


def rolling(svc: Service) -> tuple[JSON, int]:
    """The ``rollingUpdate`` parameters and minReadySeconds of update_config."""
    cfg = dict(svc.deploy.get("update_config") or {})
    where = f"{svc.where}.deploy.update_config"
    step = _step(cfg, where)
    if cfg.get("order") == "start-first":
        params: JSON = {"maxSurge": step, "maxUnavailable": 0}
    else:
        params = {"maxSurge": 0, "maxUnavailable": step}
    min_ready = units.whole_seconds(cfg["monitor"], f"{where}.monitor") if cfg.get("monitor") else 0
    keep = {k: cfg[k] for k in ("delay", "failure_action", "max_failure_ratio", "monitor") if k in cfg}
    if keep:
        svc.workload_annotations[UPDATE_ANNOTATION] = json.dumps(keep, sort_keys=True)
        if "delay" in cfg:
            svc.warn("deploy.update_config.delay", "kept as an annotation; the rollout does not act on it yet")
    rollback = dict(svc.deploy.get("rollback_config") or {})
    if rollback:
        svc.workload_annotations[ROLLBACK_ANNOTATION] = json.dumps(rollback, sort_keys=True)
        svc.warn("deploy.rollback_config", "kept as an annotation: a rollback uses update_config's pace")
    return params, min_ready
