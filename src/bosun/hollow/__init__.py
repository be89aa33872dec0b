"""Hollow nodes: simulated nodes that register, heartbeat and "run" pods without containers
(Kubernetes' Kubemark/KWOK idea), so the scheduler and controllers can be tested at scale."""

from bosun.hollow.cluster import HollowCluster
from bosun.hollow.nodes import NodeShape, parse_labels, parse_taints

__all__ = ["HollowCluster", "NodeShape", "parse_labels", "parse_taints"]
