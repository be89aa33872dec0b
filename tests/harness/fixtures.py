"""pytest fixtures of the multi-node harness (registered in tests/conftest.py).

- ``netcluster``: a 3-node cluster shared by the tests of one module (tests isolate
  themselves with namespaces of their own, as with the ``cluster`` fixture);
- ``netcluster_factory``: ``make(nodes=2, **options)`` for a test that needs a cluster of its
  own (one it may break); every cluster made is removed when the test ends, pass or fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.harness.cluster import NetCluster

NetClusterFactory = Callable[..., NetCluster]

requires_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("crun") or not os.path.exists("/usr/lib/cni/bridge"),
    reason="the multi-node harness needs root, crun and the CNI plugins")


@pytest.fixture(scope="module")
def netcluster() -> Iterator[NetCluster]:
    with NetCluster(nodes=3) as cluster:
        yield cluster


@pytest.fixture
def netcluster_factory() -> Iterator[NetClusterFactory]:
    made: list[NetCluster] = []

    def make(nodes: int = 2, **options: Any) -> NetCluster:
        cluster = NetCluster(nodes=nodes, **options)
        made.append(cluster)
        return cluster.start()

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()
