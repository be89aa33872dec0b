"""`bosun stack` against a real cluster (`bosun up`: control plane and a node running
containers as host processes): a compose file becomes ordinary objects that kubectl sees,
its tasks run, a re-deploy changes only what changed, and `stack rm` leaves nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.helpers import BosunCli, bosun_up, free_port, one_line_error, processes_with, wait_until


@dataclass
class Cluster(BosunCli):
    tmp: Path

    def kubectl_json(self, *args: str) -> dict[str, Any]:
        p = self.up.kubectl(*args, "-o", "json")
        assert p.returncode == 0, p.stderr
        return dict(json.loads(p.stdout))

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("stack")
    with bosun_up(tmp) as up:
        yield Cluster(up, tmp)


def _running(c: Cluster, ns: str, selector: str, n: int) -> Callable[[], bool]:
    def check() -> bool:
        pods = c.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live) == n and all(p["status"].get("phase") == "Running" for p in live)
    return check


def test_stack_deploy_ls_services_ps_update_prune_rm(cluster: Cluster) -> None:
    c = cluster
    marker = f"stack-{os.getpid()}"
    port = free_port()
    compose = f"""
services:
  web:
    image: host
    command: ["busybox", "httpd", "-f", "-p", "127.0.0.1:{port}"]
    ports: ["30{port % 1000:03d}:{port}"]
    networks: [front]
    depends_on:
      cache: {{condition: service_healthy}}
  cache:
    image: host
    command: ["busybox", "sh", "-c", "echo {marker}; exec sleep 3600"]
    networks: [back]
    healthcheck:
      test: ["CMD-SHELL", "test -n \\"$$HOSTNAME\\" || true"]
      interval: 1s
    deploy:
      replicas: 2
      labels: {{tier: cache}}
  batch:
    image: host
    command: ["busybox", "true"]
    deploy: {{mode: replicated-job}}
networks:
  front:
  back:
"""
    path = c.write("stack.yml", compose)
    out = c.ok("stack", "deploy", "-c", path, "shop")
    lines = out.splitlines()
    assert "Creating service shop_cache" in lines and "Creating service shop_web" in lines
    assert lines.index("Waiting for service shop_cache to be healthy") < lines.index("Creating service shop_web")

    # Ordinary objects, visible to kubectl, all labelled with the stack.
    deploys = c.kubectl_json("get", "deployments", "-n", "shop")["items"]
    assert sorted(d["metadata"]["name"] for d in deploys) == ["cache", "web"]
    for d in deploys:
        assert d["metadata"]["labels"]["com.docker.stack.namespace"] == "shop"
    assert c.kubectl_json("get", "job", "batch", "-n", "shop")["metadata"]["annotations"]["bosun.io/mode"] == \
        "replicated-job"
    web_svc = c.kubectl_json("get", "service", "web", "-n", "shop")
    assert web_svc["spec"]["type"] == "NodePort"
    assert web_svc["spec"]["ports"][0]["nodePort"] == 30000 + port % 1000
    assert c.kubectl_json("get", "service", "cache", "-n", "shop")["spec"]["clusterIP"] == "None"
    # Networks: web (front) and cache (back) share none, so cache admits only pods on back.
    policy = c.kubectl_json("get", "networkpolicy", "cache", "-n", "shop")["spec"]
    peers = [p["podSelector"]["matchLabels"] for rule in policy["ingress"] for p in rule.get("from", [])]
    assert peers == [{"network.bosun.io/back": "true"}]
    web_labels = c.kubectl_json("get", "deployment", "web", "-n", "shop")["spec"]["template"]["metadata"]["labels"]
    assert "network.bosun.io/back" not in web_labels and web_labels["network.bosun.io/front"] == "true"

    wait_until(_running(c, "shop", "bosun.io/service=cache", 2), what="two cache tasks running")
    wait_until(_running(c, "shop", "bosun.io/service=web", 1), what="the web task running")

    assert "shop" in c.ok("stack", "ls").split()
    ls = c.ok("stack", "ls").splitlines()
    assert ls[0].split() == ["NAME", "SERVICES"]
    assert ["shop", "3"] in [line.split() for line in ls[1:]]

    services = c.ok("stack", "services", "shop").splitlines()
    assert services[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    rows = {line.split()[1]: line.split() for line in services[1:]}
    assert rows["shop_cache"][2:5] == ["replicated", "2/2", "host"]
    assert rows["shop_web"][5] == f"*:{30000 + port % 1000}->{port}/tcp"
    assert rows["shop_batch"][2] == "replicated-job"

    ps = c.ok("stack", "ps", "shop").splitlines()
    assert ps[0].split()[:4] == ["ID", "NAME", "IMAGE", "NODE"]
    names = {line.split()[1] for line in ps[1:]}
    assert {"shop_cache.1", "shop_cache.2", "shop_web.1"} <= names

    # Re-deploying the same file changes nothing; a changed service alone is updated.
    again = c.ok("stack", "deploy", "-c", path, "shop")
    assert "Creating" not in again and "Updating" not in again
    path2 = c.write("stack2.yml", compose.replace("replicas: 2", "replicas: 3").replace(
        "  batch:\n    image: host\n    command: [\"busybox\", \"true\"]\n    deploy: {mode: replicated-job}\n", ""))
    changed = c.ok("stack", "deploy", "-c", path2, "--prune", "shop").splitlines()
    assert "Updating service shop_cache" in changed
    assert "Updating service shop_web" not in changed
    assert "Removing service shop_batch" in changed
    wait_until(_running(c, "shop", "bosun.io/service=cache", 3), what="three cache tasks after the update")
    assert c.up.kubectl("get", "job", "batch", "-n", "shop").returncode != 0

    removed = c.ok("stack", "rm", "shop").splitlines()
    assert removed[:2] == ["Removing service shop_cache", "Removing service shop_web"]

    def gone() -> bool:
        return c.up.kubectl("get", "namespace", "shop").returncode != 0
    wait_until(gone, what="the stack's namespace deleted")
    wait_until(lambda: processes_with(marker) == [], what="the stack's containers stopped")
    assert "shop" not in c.ok("stack", "ls").split()


def test_stack_rm_of_a_missing_stack(cluster: Cluster) -> None:
    assert one_line_error(cluster.bosun("stack", "rm", "nosuchstack")) == "Nothing found in stack: nosuchstack"


def test_bad_compose_files_get_composes_error(cluster: Cluster) -> None:
    c = cluster
    bad = c.write("bad.yml", "services:\n  web:\n    image: host\n    replica: 2\n")
    assert one_line_error(c.bosun("stack", "deploy", "-c", bad, "bad")) == \
        f"error: validating {bad}:4: services.web additional properties 'replica' not allowed"
    broken = c.write("broken.yml", "services:\n  web: [\n")
    assert one_line_error(c.bosun("stack", "deploy", "-c", broken, "bad")).startswith(f"error: {broken}: yaml: line")
    undefined = c.write("undef.yml", "services:\n  web: {image: host, secrets: [pw]}\n")
    assert one_line_error(c.bosun("stack", "deploy", "-c", undefined, "bad")) == \
        'error: service "web" refers to undefined secret pw: invalid compose project'
    assert one_line_error(c.bosun("stack", "deploy", "-c", str(c.tmp / "none.yml"), "bad")).startswith(
        "error: open ")
    good = c.write("good.yml", "services:\n  web: {image: host, command: [busybox, sleep, '9']}\n")
    assert one_line_error(c.bosun("stack", "deploy", "-c", good, "default")) == \
        "Error response from daemon: namespace default exists and is not a stack: choose another stack name"
    assert c.up.kubectl("get", "deployment", "web", "-n", "default").returncode != 0
    assert one_line_error(c.bosun("stack", "deploy", "-c", bad, "Bad_Name")) == \
        "error: invalid stack name 'Bad_Name': lower-case letters, digits and '-', starting with a letter"
    assert c.up.kubectl("get", "namespace", "bad").returncode != 0  # nothing was written


def test_dry_run_prints_objects_and_warnings_and_writes_nothing(cluster: Cluster) -> None:
    c = cluster
    path = c.write("dry.yml", "services:\n  app:\n    image: host\n    shm_size: 64m\n")
    r = c.bosun("stack", "deploy", "--dry-run", "-c", path, "dry")
    assert r.rc == 0, r.err
    assert "kind: Deployment" in r.out and "kind: NetworkPolicy" in r.out
    assert "Warning: services.app.shm_size: not supported by Bosun; ignored" in r.err.splitlines()
    assert c.up.kubectl("get", "namespace", "dry").returncode != 0
    piped = c.bosun("stack", "deploy", "--dry-run", "-c", "-", "dry", stdin="services:\n  fromstdin: {image: host}\n")
    assert piped.rc == 0 and "name: fromstdin" in piped.out


def test_a_published_port_belongs_to_one_stack(cluster: Cluster) -> None:
    c = cluster
    first = c.write("p1.yml", "services:\n  a:\n    image: host\n    command: [busybox, sleep, '60']\n"
                              "    ports: ['31999:80']\n")
    c.ok("stack", "deploy", "-c", first, "portone")
    try:
        again = c.ok("stack", "deploy", "-c", first, "portone")  # its own port is not a conflict
        assert "Error" not in again
        second = c.write("p2.yml", "services:\n  b:\n    image: host\n    command: [busybox, sleep, '60']\n"
                                   "    ports: ['31999:8080']\n")
        assert one_line_error(c.bosun("stack", "deploy", "-c", second, "porttwo")) == \
            "Error response from daemon: port '31999/tcp' is already in use by service 'a' (namespace portone)"
        assert c.up.kubectl("get", "namespace", "porttwo").returncode != 0
    finally:
        c.ok("stack", "rm", "portone")


def test_waiting_deploy_fails_naming_the_service_and_rolls_the_stack_back(cluster: Cluster) -> None:
    c = cluster
    good = """
services:
  first:
    image: host
    command: [busybox, sleep, "3600"]
  app:
    image: host
    command: [busybox, sleep, "3600"]
    depends_on: [first]
    deploy:
      update_config: {failure_action: rollback}
"""
    path = c.write("roll.yml", good)
    out = c.ok("stack", "deploy", "--detach=false", "-c", path, "roll")
    assert "verify: Service roll_app converged" in out
    try:
        bad = good.replace('[busybox, sleep, "3600"]\n  app:', '[busybox, sleep, "3601"]\n  app:')
        bad = bad.replace('[busybox, sleep, "3600"]\n    depends_on', '[busybox, "false"]\n    depends_on')
        r = c.bosun("stack", "deploy", "--detach=false", "-c", c.write("roll-bad.yml", bad), "roll")
        assert r.rc == 1, (r.out, r.err)
        assert r.err.strip().splitlines()[-1].startswith("error: service roll_app: update rolled back: task app-")
        assert "rollback: update rolled back due to failure or early termination of task app-" in r.out
        assert "Rolling back service roll_first" in r.out  # the service updated before it goes back too
        for name in ("app", "first"):
            live = c.up.kubectl("get", "deployment", name, "-n", "roll", "-o",
                                "jsonpath={.spec.template.spec.containers[0].args}")
            assert json.loads(live.stdout) == ["busybox", "sleep", "3600"], name
    finally:
        c.ok("stack", "rm", "roll")


def test_changing_a_services_mode_replaces_its_workload(cluster: Cluster) -> None:
    c = cluster
    path = c.write("mode.yml", "services:\n  app:\n    image: host\n    command: [busybox, sleep, '600']\n")
    c.ok("stack", "deploy", "-c", path, "modes")
    try:
        assert c.up.kubectl("get", "deployment", "app", "-n", "modes").returncode == 0
        path2 = c.write("mode2.yml", "services:\n  app:\n    image: host\n    command: [busybox, sleep, '600']\n"
                                     "    deploy: {mode: global}\n")
        assert "Creating service modes_app" in c.ok("stack", "deploy", "-c", path2, "modes")
        assert c.up.kubectl("get", "deployment", "app", "-n", "modes").returncode != 0
        assert c.up.kubectl("get", "daemonset", "app", "-n", "modes").returncode == 0
        services = c.ok("stack", "services", "modes").splitlines()
        assert [line.split()[1:3] for line in services[1:]] == [["modes_app", "global"]]
    finally:
        c.ok("stack", "rm", "modes")


def test_depends_on_completed_successfully_waits_for_the_job(cluster: Cluster) -> None:
    c = cluster
    path = c.write("jobs.yml", """
services:
  migrate:
    image: host
    command: [busybox, sh, -c, "sleep 1; echo migrated"]
    deploy: {mode: replicated-job}
  app:
    image: host
    command: [busybox, sleep, "600"]
    depends_on:
      migrate: {condition: service_completed_successfully}
""")
    try:
        lines = c.ok("stack", "deploy", "-c", path, "jobs").splitlines()
        wait = lines.index("Waiting for service jobs_migrate to be completed successfully")
        assert lines.index("Creating service jobs_migrate") < wait < lines.index("Creating service jobs_app")
        job = c.kubectl_json("get", "job", "migrate", "-n", "jobs")
        assert job["status"].get("succeeded") == 1  # it had finished before app was created
        assert c.up.kubectl("get", "deployment", "app", "-n", "jobs").returncode == 0
    finally:
        c.ok("stack", "rm", "jobs")

    failing = c.write("jobs-bad.yml", """
services:
  migrate:
    image: host
    command: [busybox, "false"]
    restart: "no"
    deploy: {mode: replicated-job}
  app:
    image: host
    command: [busybox, sleep, "600"]
    depends_on:
      migrate: {condition: service_completed_successfully}
""")
    try:
        r = c.bosun("stack", "deploy", "-c", failing, "jobsbad")
        assert one_line_error(r) == \
            "error: service jobsbad_migrate didn't complete successfully: its task failed"
        assert c.up.kubectl("get", "deployment", "app", "-n", "jobsbad").returncode != 0  # never started
    finally:
        c.ok("stack", "rm", "jobsbad")
