"""Filter and score plugins, one module each; ``default_filters`` is Kubernetes' order."""

from __future__ import annotations

from bosun.scheduler.framework import Filter
from bosun.scheduler.plugins.constraints import Constraints
from bosun.scheduler.plugins.nodeaffinity import NodeAffinity
from bosun.scheduler.plugins.nodename import NodeName
from bosun.scheduler.plugins.podaffinity import InterPodAffinity
from bosun.scheduler.plugins.ports import NodePorts
from bosun.scheduler.plugins.resources import NodeResourcesFit
from bosun.scheduler.plugins.taints import TaintToleration
from bosun.scheduler.plugins.topologyspread import PodTopologySpread
from bosun.scheduler.plugins.unschedulable import NodeUnschedulable
from bosun.scheduler.plugins.volumebinding import VolumeBinding
from bosun.scheduler.snapshot import Snapshot


def default_filters(snap: Snapshot, volumes: VolumeBinding | None = None) -> list[Filter]:
    """``volumes`` (which needs claim, volume and class listers) joins where Kubernetes runs it."""
    filters: list[Filter] = [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), Constraints(),
                             NodePorts(), NodeResourcesFit()]
    if volumes is not None:
        filters.append(volumes)
    return [*filters, PodTopologySpread(), InterPodAffinity(snap)]
