"""What a Kubernetes user applies to a fresh one-node cluster, applied with kubectl and checked
from the outside: real crun/runc containers in pod networks, answering on their pod IPs.

The cluster is the one `bosun up` runs (the whole control plane and one node agent with the oci
driver and default settings), started in this process so that it gets a bridge, pod network and
cgroup parent of its own (other runs on this machine use bosun0) and so that the CronJob
controller's clock can be sped up. The manifests are the ones in examples/.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, start_server
from tests.integration.oci_env import OciEnv, oci_env, requires_oci

from bosun.agent.agent import Agent
from bosun.agent.config import AgentConfig
from bosun.client.kubeconfig import ClusterConfig
from bosun.client.rest import Client
from bosun.controllers import cronjob as cronjob_controller
from bosun.controlplane import ControlPlaneOptions

pytestmark = [requires_oci, pytest.mark.timeout(120)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Cluster:
    server: RunningServer
    env: OciEnv
    home: str

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", self.server.kubeconfig, *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout, env=dict(os.environ, HOME=self.home))

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        out = self.kubectl(*args, stdin=stdin, timeout=timeout)
        assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return out.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))


class FastClock(cronjob_controller.Clock):
    """The CronJob controller's clock, running 30 times faster than the wall clock from now on."""

    speed = 30.0

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.real_start = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.real_start) * self.speed)

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / self.speed


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("acceptance")
    saved_clock = cronjob_controller.clock
    cronjob_controller.clock = FastClock()
    running = start_server(tmp / "server", options=ControlPlaneOptions())
    client = Client(ClusterConfig(server=running.url, ca_data=Path(running.ca_path).read_bytes(),
                                  token=running.token))
    config = AgentConfig(node_name="acceptance", data_dir=tmp / "agent", role="control-plane",
                         listen_host="127.0.0.1", listen_port=0, drain_on_stop=True,
                         backoff_base=1.0, backoff_max=5.0)
    env_cm = oci_env()
    try:
        env: OciEnv = running.call(env_cm.__aenter__())  # type: ignore[assignment]
        agent = Agent(client, config, env.driver, node_ip="127.0.0.1")
        try:
            running.call(agent.start(), timeout=60)
            try:
                yield Cluster(running, env, str(tmp))
            finally:
                running.call(agent.stop(), timeout=60)
        finally:
            running.call(env_cm.__aexit__(None, None, None), timeout=60)
    finally:
        cronjob_controller.clock = saved_clock
        running.call(client.close())
        running.stop()


@pytest.fixture
def ns(cluster: Cluster, namespace: str) -> Iterator[str]:
    cluster.ok("create", "namespace", namespace)
    try:
        yield namespace
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def until(check: Callable[[], Any], what: str, within: float = 30, step: float = 0.2) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, OSError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(step)
    raise AssertionError(f"{what}: not within {within}s (last: {last!r})")


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return str(resp.read().decode())


def explain(cluster: Cluster, ns: str) -> str:
    """What a user would look at when a workload does not come up: pods, events, logs."""
    out = [cluster.kubectl("describe", "pods", "-n", ns).stdout]
    for name in cluster.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split():
        out.append(f"--- logs {name}\n" + cluster.kubectl("logs", "-n", ns, name, "--all-containers").stdout
                   + cluster.kubectl("logs", "-n", ns, name, "--all-containers").stderr)
    return "\n".join(out)


def rollout(cluster: Cluster, ns: str, what: str, within: int = 60) -> None:
    out = cluster.kubectl("rollout", "status", "-n", ns, what, f"--timeout={within}s", timeout=within + 10)
    assert out.returncode == 0, f"{what} did not roll out: {out.stdout}{out.stderr}\n{explain(cluster, ns)}"


def pods(cluster: Cluster, ns: str, selector: str) -> list[dict[str, Any]]:
    return list(cluster.json("get", "pods", "-n", ns, "-l", selector)["items"])


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def test_deployment_with_config_secrets_probes_and_service(cluster: Cluster, ns: str) -> None:
    cluster.ok("apply", "-n", ns, "-f", str(EXAMPLES / "web-config.yaml"))
    rollout(cluster, ns, "deployment/web", 20)
    running = [p for p in pods(cluster, ns, "app=web") if ready(p)]
    assert len(running) == 2
    for pod in running:
        ip, name = pod["status"]["podIP"], pod["metadata"]["name"]
        assert http_get(f"http://{ip}:8080/env.txt") == (
            f"greeting=hello from a configmap user=admin pod={name}\n")
        assert http_get(f"http://{ip}:8080/config/site.txt") == "site file from a configmap\n"
        assert http_get(f"http://{ip}:8080/secret/password.txt") == "s3cret"
    ips = sorted(p["status"]["podIP"] for p in running)

    def endpoint_ips() -> list[str]:
        ep = cluster.json("get", "endpoints", "-n", ns, "web")
        return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])

    until(lambda: endpoint_ips() == ips, "the Service's Endpoints list both pods")
    ports = cluster.json("get", "endpoints", "-n", ns, "web")["subsets"][0]["ports"]
    assert [p["port"] for p in ports] == [8080]
