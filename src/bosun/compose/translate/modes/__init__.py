"""One module per deploy mode, as swarmkit has one orchestrator per service mode: each turns
a finished pod template into the workload that runs it (Deployment, DaemonSet or Job)."""

from __future__ import annotations

from typing import Protocol

from bosun.compose.translate.context import JSON, Service
from bosun.compose.translate.modes.global_ import Global
from bosun.compose.translate.modes.jobs import GlobalJob, ReplicatedJob
from bosun.compose.translate.modes.replicated import Replicated


class Mode(Protocol):
    def workload(self, svc: Service, template: JSON) -> JSON: ...


MODES: dict[str, Mode] = {
    "replicated": Replicated(),
    "global": Global(),
    "replicated-job": ReplicatedJob(),
    "global-job": GlobalJob(),
}
