"""What a Kubernetes user applies to a fresh one-node cluster, applied with kubectl and checked
from the outside: real crun/runc containers in pod networks, answering on their pod IPs.

The cluster is the one `bosun up` runs (the whole control plane and one node agent with the oci
driver and default settings), started in this process so that it gets a bridge, pod network and
cgroup parent of its own (other runs on this machine use bosun0) and so that the CronJob
controller's clock can be sped up. The manifests are the ones in examples/.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
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
from bosun.component import ControlPlaneOptions
from bosun.controllers import cronjob as cronjob_controller

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


def test_job_completes_and_its_logs_are_readable(cluster: Cluster, ns: str) -> None:
    cluster.ok("apply", "-n", ns, "-f", str(EXAMPLES / "job.yaml"))
    done = cluster.kubectl("wait", "-n", ns, "--for=condition=complete", "job/count", "--timeout=60s", timeout=70)
    assert done.returncode == 0, f"{done.stderr}\n{explain(cluster, ns)}"
    job = cluster.json("get", "job", "-n", ns, "count")
    assert job["status"]["succeeded"] == 3 and not job["status"].get("failed")
    finished = pods(cluster, ns, "job-name=count")
    assert len(finished) == 3 and {p["status"]["phase"] for p in finished} == {"Succeeded"}
    # kubectl logs job/NAME reads one of the Job's pods.
    assert cluster.ok("logs", "-n", ns, "job/count").startswith("done by count-")
    for pod in finished:
        name = pod["metadata"]["name"]
        assert cluster.ok("logs", "-n", ns, name) == f"done by {name}\n"


def test_statefulset_pod_comes_back_with_its_name_and_data(cluster: Cluster, ns: str) -> None:
    cluster.ok("apply", "-n", ns, "-f", str(EXAMPLES / "statefulset.yaml"))
    rollout(cluster, ns, "statefulset/store")
    claims = cluster.json("get", "pvc", "-n", ns)["items"]
    assert sorted((c["metadata"]["name"], c["status"]["phase"]) for c in claims) == [
        ("data-store-0", "Bound"), ("data-store-1", "Bound")]
    for i in (0, 1):
        ip = cluster.json("get", "pod", "-n", ns, f"store-{i}")["status"]["podIP"]
        assert http_get(f"http://{ip}:8080/starts") == f"store-{i}\n"
    old_uid = cluster.json("get", "pod", "-n", ns, "store-1")["metadata"]["uid"]
    cluster.ok("delete", "pod", "-n", ns, "store-1")

    def back() -> dict[str, Any] | None:
        pod: dict[str, Any] = cluster.json("get", "pod", "-n", ns, "store-1")
        return pod if pod["metadata"]["uid"] != old_uid and ready(pod) else None

    pod = until(back, "store-1 is back and ready", within=60)
    assert http_get(f"http://{pod['status']['podIP']}:8080/starts") == "store-1\nstore-1\n"
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-store-1"


def test_cronjob_runs_on_schedule(cluster: Cluster, ns: str) -> None:
    """The controller's clock runs 30 times faster here, so "every minute" is every 2 s."""
    cluster.ok("apply", "-n", ns, "-f", str(EXAMPLES / "cronjob.yaml"))

    def succeeded_jobs() -> list[str]:
        jobs = cluster.json("get", "jobs", "-n", ns)["items"]
        return [j["metadata"]["name"] for j in jobs if (j.get("status") or {}).get("succeeded")]

    names = until(succeeded_jobs, "a scheduled Job succeeded", within=60)
    assert names[0].startswith("tick-")
    assert cluster.ok("logs", "-n", ns, f"job/{names[0]}").startswith("tick-")
    cj = cluster.json("get", "cronjob", "-n", ns, "tick")
    assert cj["status"].get("lastScheduleTime")
    cluster.ok("delete", "cronjob", "-n", ns, "tick")


def test_two_containers_share_an_empty_dir(cluster: Cluster, ns: str) -> None:
    cluster.ok("apply", "-n", ns, "-f", str(EXAMPLES / "sidecar.yaml"))
    waited = cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/sidecar", "--timeout=60s", timeout=70)
    assert waited.returncode == 0, f"{waited.stderr}\n{explain(cluster, ns)}"
    ip = cluster.json("get", "pod", "-n", ns, "sidecar")["status"]["podIP"]
    first = http_get(f"http://{ip}:8080/index.html")
    assert first.startswith("written-")
    until(lambda: http_get(f"http://{ip}:8080/index.html") != first, "the writer keeps writing", within=10)


def test_init_container_prepares_what_the_main_container_serves(cluster: Cluster, ns: str) -> None:
    cluster.ok("apply", "-n", ns, "-f", str(EXAMPLES / "init-container.yaml"))
    waited = cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/init-web", "--timeout=60s", timeout=70)
    assert waited.returncode == 0, f"{waited.stderr}\n{explain(cluster, ns)}"
    pod = cluster.json("get", "pod", "-n", ns, "init-web")
    init = pod["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 0 and init["state"]["terminated"]["reason"] == "Completed"
    assert http_get(f"http://{pod['status']['podIP']}:8080/index.html") == "prepared by an init container\n"


CONFIG_POD = """
apiVersion: v1
kind: ConfigMap
metadata: {name: live}
data: {message: first}
---
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: web
      image: host
      command: [python3, -m, http.server, "8080", --directory, /config]
      readinessProbe:
        tcpSocket: {port: 8080}
        periodSeconds: 1
      volumeMounts: [{name: config, mountPath: /config}]
  volumes:
    - name: config
      configMap: {name: live}
"""


def test_configmap_update_reaches_the_mounted_file(cluster: Cluster, ns: str) -> None:
    cluster.ok("apply", "-n", ns, "-f", "-", stdin=CONFIG_POD)
    waited = cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/live", "--timeout=60s", timeout=70)
    assert waited.returncode == 0, f"{waited.stderr}\n{explain(cluster, ns)}"
    ip = cluster.json("get", "pod", "-n", ns, "live")["status"]["podIP"]
    assert http_get(f"http://{ip}:8080/message") == "first"
    cluster.ok("apply", "-n", ns, "-f", "-", stdin=CONFIG_POD.replace("message: first", "message: second"))
    # The kubelet refreshes within its sync period (about a minute); a user expects well under that here.
    until(lambda: http_get(f"http://{ip}:8080/message") == "second", "the file shows the new value", within=60)
    assert cluster.ok("exec", "-n", ns, "live", "--", "cat", "/config/message") == "second"


PLAIN_NGINX = """
apiVersion: v1
kind: Pod
metadata: {name: nginx}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: nginx
      image: host
      command: [nginx, -g, "daemon off;"]
      readinessProbe:
        tcpSocket: {port: 80}
        periodSeconds: 1
"""


def test_host_nginx_runs_with_no_volumes(cluster: Cluster, ns: str) -> None:
    """The host image has an empty, writable /run and /var tree like an image built on this host,
    so nginx finds /var/log/nginx, /var/lib/nginx and /run without emptyDirs."""
    cluster.ok("apply", "-n", ns, "-f", "-", stdin=PLAIN_NGINX)
    waited = cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/nginx", "--timeout=60s", timeout=70)
    assert waited.returncode == 0, f"{waited.stderr}\n{explain(cluster, ns)}"
    ip = cluster.json("get", "pod", "-n", ns, "nginx")["status"]["podIP"]
    try:
        urllib.request.urlopen(f"http://{ip}/", timeout=3)
        status, server = 200, "nginx"
    except urllib.error.HTTPError as exc:  # the host's /var/www is not shared: 404 from nginx
        status, server = exc.code, exc.headers.get("Server", "")
    assert status in (200, 403, 404) and server.startswith("nginx")
    assert cluster.ok("exec", "-n", ns, "nginx", "--", "cat", "/run/nginx.pid").strip().isdigit()
    assert cluster.ok("exec", "-n", ns, "nginx", "--", "ls", "/var/log/nginx").split() == ["access.log", "error.log"]
