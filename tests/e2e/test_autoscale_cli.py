"""The Swarm-style front ends of autoscaling against `bosun up`: `x-bosun-autoscale` in a
compose file makes an HPA next to the service's Deployment (and pruning it away removes it),
and `bosun service update --autoscale-*` makes or changes one; the HPA then acts (a minimum
above the current size scales the service up); bad bounds are one line, not a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.helpers import BosunCli, bosun_up, one_line_error, wait_until

pytestmark = pytest.mark.timeout(240)


class Cluster(BosunCli):
    def json(self, *args: str) -> dict[str, Any]:
        p = self.up.kubectl(*args, "-o", "json")
        assert p.returncode == 0, p.stderr
        return dict(json.loads(p.stdout))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with bosun_up(tmp_path_factory.mktemp("autoscale")) as up:
        yield Cluster(up)


COMPOSE = """
services:
  web:
    image: host
    command: ["busybox", "sleep", "3600"]
    deploy:
      resources: {reservations: {cpus: "0.1"}}
    x-bosun-autoscale: {min: 2, max: 4, cpu: 60}
  agent:
    image: host
    command: ["busybox", "sleep", "3600"]
    deploy: {mode: global}
"""


def test_compose_and_service_update_make_autoscalers(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    path = tmp_path / "stack.yml"
    path.write_text(COMPOSE)
    out = c.ok("stack", "deploy", "-c", str(path), "scaled")
    assert "Creating autoscaler scaled_web" in out, out
    hpa = c.json("get", "hpa", "web", "-n", "scaled")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60

    def replicas() -> int:
        return int(c.json("get", "deployment", "web", "-n", "scaled")["spec"]["replicas"])

    # Below its minimum, the HPA scales the service up with no metric needed ...
    wait_until(lambda: replicas() == 2, within=60, what="the HPA raised web to its minimum of 2")
    # ... and a re-deploy of the same file leaves the task count to it.
    c.ok("stack", "deploy", "-c", str(path), "scaled")
    assert replicas() == 2

    out = c.ok("service", "update", "scaled_web", "--autoscale-min", "3", "--autoscale-cpu", "70", "-d")
    assert "autoscaler updated: scaled_web" in out, out
    hpa = c.json("get", "hpa", "web", "-n", "scaled")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 4)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    wait_until(lambda: replicas() == 3, within=60, what="the HPA raised web to its new minimum of 3")

    err = one_line_error(c.bosun("service", "update", "scaled_web", "--autoscale-min", "5", "--autoscale-max", "3"))
    assert "--autoscale-max (3) must be at least min (5)" in err, err
    err = one_line_error(c.bosun("service", "update", "scaled_agent", "--autoscale-max", "3"))
    assert "only replicated services can autoscale" in err, err

    path.write_text(COMPOSE.replace("    x-bosun-autoscale: {min: 2, max: 4, cpu: 60}\n", ""))
    assert "x-bosun-autoscale" not in path.read_text()
    c.ok("stack", "deploy", "-c", str(path), "--prune", "scaled")
    assert c.up.kubectl("get", "hpa", "web", "-n", "scaled").returncode != 0
    c.ok("stack", "rm", "scaled")
