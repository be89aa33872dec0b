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
from bosun.scheduler.snapshot import Snapshot


def default_filters(snap: Snapshot) -> list[Filter]:
    return [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), Constraints(), NodePorts(),
            NodeResourcesFit(), PodTopologySpread(), InterPodAffinity(snap)]
