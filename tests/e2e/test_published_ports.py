"""Published ports keep the number the user wrote, on three nodes of the harness, seen from a
client outside the cluster: ``-p 8080:80`` (Swarm's routing mesh) answers on port 8080 of
every node, also where no task runs; ``mode=host`` answers only on the node running the task;
a port another service publishes is refused in one line by the CLI and with a 422 naming the
port by the API (kubectl)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from tests.e2e.helpers import BOSUN, Run, one_line_error, wait_until
from tests.harness import NetCluster
from tests.harness.fixtures import requires_netns

pytestmark = [pytest.mark.timeout(300), requires_netns]

SERVE = ["python3", "-m", "http.server", "80", "--directory", "/etc"]  # GET /hostname: the task's name


class Cli:
    def __init__(self, cluster: NetCluster) -> None:
        self.cluster = cluster

    def __call__(self, *args: str) -> Run:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "BOSUN_DEBUG")}
        p = subprocess.run([BOSUN, "--kubeconfig", self.cluster.kubeconfig, *args], capture_output=True, text=True,
                           timeout=120, env=env, check=False)
        assert "Traceback" not in p.stderr, p.stderr
        return Run(p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str) -> str:
        r = self(*args)
        assert r.rc == 0, f"bosun {' '.join(args)} failed ({r.rc}): {r.err}"
        return r.out


@pytest.fixture(scope="module")
def cli(netcluster: NetCluster) -> Iterator[Cli]:
    c = Cli(netcluster)
    try:
        yield c
    finally:
        for name in ("web", "hostweb", "other"):
            c("service", "rm", name)


def answers(cluster: NetCluster, ip: str, port: int) -> str:
    """The body a client outside the cluster gets from ip:port ("" when refused or silent)."""
    done = cluster.sh(cluster.client_ns, "curl", "-s", "-m", "3", f"http://{ip}:{port}/hostname", timeout=10)
    return done.stdout.strip() if done.returncode == 0 else ""


def test_ingress_port_answers_on_every_node_at_the_number_written(netcluster: NetCluster, cli: Cli) -> None:
    cli.ok("service", "create", "-d", "--name", "web", "--replicas", "1", "-p", "8080:80",
           "--constraint", "node.hostname==n1", "host", *SERVE)
    svc = netcluster.kubectl_json("get", "service", "-n", "default", "web")
    assert [(p["port"], p["nodePort"]) for p in svc["spec"]["ports"]] == [(80, 8080)]
    assert "*:8080->80/tcp" in cli.ok("service", "ls")
    for node in netcluster.nodes:  # n2 and n3 run no task: the mesh forwards to n1
        ip = node.ip
        wait_until(lambda: answers(netcluster, ip, 8080) != "", 90, f"8080 on {node.name}")  # noqa: B023
    assert answers(netcluster, netcluster.nodes[2].ip, 8080).startswith("web")


def test_a_published_port_belongs_to_one_service(netcluster: NetCluster, cli: Cli) -> None:
    wait_until(lambda: netcluster.kubectl("get", "service", "-n", "default", "web").returncode == 0, 30, "web")
    line = one_line_error(cli("service", "create", "-d", "--name", "other", "-p", "8080:81", "host", *SERVE))
    assert "8080" in line and "already in use by service 'web'" in line, line
    manifest = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "other", "annotations": {"bosun.io/published-ports": "8080:81/tcp"}},
                "spec": {"type": "NodePort", "selector": {"app": "x"},
                         "ports": [{"port": 81, "nodePort": 8080}]}}
    done = netcluster.kubectl("create", "-n", "default", "-f", "-", input=json.dumps(manifest))
    assert done.returncode == 1
    assert "spec.ports[0].nodePort: Invalid value: 8080: provided port is already allocated " \
           "(in use by service default/web)" in done.stderr


def test_host_mode_answers_only_where_a_task_runs(netcluster: NetCluster, cli: Cli) -> None:
    cli.ok("service", "create", "-d", "--name", "hostweb", "--replicas", "1",
           "-p", "published=8081,target=80,mode=host", "--constraint", "node.hostname==n2", "host", *SERVE)
    n1, n2, n3 = netcluster.nodes[:3]
    wait_until(lambda: answers(netcluster, n2.ip, 8081) != "", 90, "8081 on n2")
    assert answers(netcluster, n1.ip, 8081) == "" and answers(netcluster, n3.ip, 8081) == ""
