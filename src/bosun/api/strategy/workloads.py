"""Strategies of the workload kinds (apps/v1, batch/v1, autoscaling/v2)."""

from __future__ import annotations

import copy

from bosun.api.defaults import core as dcore
from bosun.api.defaults import workloads as dw
from bosun.api.strategy.base import Obj, Strategy
from bosun.api.validation import apps, batch, other, update
from bosun.api.validation.podwarnings import for_template

TEMPLATE = for_template("spec", "template")


class JobStrategy(Strategy):
    """A replaced Job keeps the selector the server generated (unless the user manages it)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        ns, os_ = new.get("spec"), old.get("spec")
        if not isinstance(ns, dict) or not isinstance(os_, dict):
            return
        if ns.get("selector") is None and ns.get("manualSelector") is not True and os_.get("selector") is not None:
            ns["selector"] = copy.deepcopy(os_["selector"])


DEPLOYMENT = Strategy(apps.validate_deployment, update_rule=update.selector_update,
                      defaulter=dw.default_deployment, warner=TEMPLATE)
REPLICA_SET = Strategy(apps.validate_replicaset, update_rule=update.selector_update,
                       defaulter=dw.default_replicaset, status_zeros={"replicas": 0}, warner=TEMPLATE)
# Unlike a ReplicaSet's, a ReplicationController's selector may change (upstream allows it).
REPLICATION_CONTROLLER = Strategy(apps.validate_replication_controller, defaulter=dw.default_replication_controller,
                                  status_zeros={"replicas": 0}, warner=TEMPLATE)
STATEFUL_SET = Strategy(apps.validate_statefulset, update_rule=update.statefulset_update,
                        defaulter=dw.default_statefulset, status_zeros={"replicas": 0, "availableReplicas": 0},
                        warner=TEMPLATE)
DAEMON_SET = Strategy(apps.validate_daemonset, update_rule=update.selector_update, defaulter=dw.default_daemonset,
                      status_zeros={"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                    "desiredNumberScheduled": 0, "numberReady": 0}, warner=TEMPLATE)
CONTROLLER_REVISION = Strategy(apps.validate_controller_revision)
JOB = JobStrategy(batch.validate_job, update_rule=update.job_update, defaulter=dw.default_job, warner=TEMPLATE)
CRON_JOB = Strategy(batch.validate_cronjob, defaulter=dw.default_cronjob,
                    warner=for_template("spec", "jobTemplate", "spec", "template"))
HPA = Strategy(other.validate_hpa, defaulter=dcore.default_hpa, status_zeros={"desiredReplicas": 0})
