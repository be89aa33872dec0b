"""`bosun service` and `bosun node` against a real two-node cluster (`bosun up` and a second
`bosun agent`, both running containers as host processes): services are created, scaled,
updated and rolled back as Deployments the user can see with kubectl, and draining a node
moves its tasks to the other node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.e2e.helpers import BOSUN, BosunCli, bosun_up, free_port, one_line_error, processes_with, wait_until

MARKER = f"svc-{os.getpid()}"


@dataclass
class Cluster(BosunCli):
    second: str  # the second node's name

    def get(self, *args: str) -> dict[str, Any]:
        p = self.up.kubectl("get", *args, "-o", "json")
        assert p.returncode == 0, p.stderr
        return dict(json.loads(p.stdout))

    def pods(self, service: str) -> list[dict[str, Any]]:
        items = self.get("pods", "-n", "default", "-l", f"bosun.io/service={service}")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("swarm")
    with bosun_up(tmp) as up:
        name = f"second-{os.getpid()}"
        agent = subprocess.Popen(
            [BOSUN, "agent", "--kubeconfig", up.kubeconfig, "--name", name, "--runtime", "process",
             "--data-dir", str(tmp / "agent2"), "--port", str(free_port()), "--labels", "zone=b",
             "--no-node-network"],  # bosun up programs this host's network; two agents would fight over it
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        c = Cluster(up, name)
        try:
            def both_ready() -> bool:
                nodes = c.get("nodes")["items"]
                return len(nodes) == 2 and all(  # a Node just created has no status yet
                    any(x["type"] == "Ready" and x["status"] == "True"
                        for x in n.get("status", {}).get("conditions", [])) for n in nodes)
            wait_until(both_ready, what="two Ready nodes")
            yield c
        finally:
            # The second agent leaves its containers running when it stops: remove the
            # services first and wait until their processes are gone.
            for svc in c.bosun("service", "ls", "-q").out.split():
                c.bosun("service", "rm", svc)
            deadline = time.time() + 30
            while processes_with(MARKER) and time.time() < deadline:
                time.sleep(0.5)
            _stop(agent)


def _sleeper(name: str) -> list[str]:
    return ["host", "busybox", "sh", "-c", f"echo {MARKER} {name}; exec sleep 3600"]


def test_service_create_ls_ps_scale_update_rollback_rm(cluster: Cluster) -> None:
    c = cluster
    out = c.ok("service", "create", "--name", "web", "--replicas", "2", "-e", "GREETING=hi", "--label", "team=a",
               "--update-parallelism", "2", "--update-order", "start-first", *_sleeper("web")).splitlines()
    assert out[-1] == "verify: Service web converged"
    assert "overall progress: 2 out of 2 tasks" in out
    deploy = c.get("deployment", "web", "-n", "default")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["metadata"]["labels"]["team"] == "a"
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 0}
    assert {"name": "GREETING", "value": "hi"} in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    assert c.get("service", "web", "-n", "default")["spec"]["selector"] == {"bosun.io/service": "web"}

    ls = c.ok("service", "ls").splitlines()
    assert ls[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert ["web", "replicated", "2/2", "host"] == next(r.split()[1:5] for r in ls[1:] if r.split()[1] == "web")

    ps = c.ok("service", "ps", "web").splitlines()
    assert ps[0].split()[:2] == ["ID", "NAME"]
    assert sorted(r.split()[1] for r in ps[1:]) == ["web.1", "web.2"]
    assert all("Running" in r for r in ps[1:])
    assert c.ok("service", "ps", "-f", "desired-state=shutdown", "web").splitlines()[1:] == []
    assert len(c.ok("service", "ps", "-f", "desired-state=running", "-f", "name=web.2", "web").splitlines()) == 2
    assert one_line_error(c.bosun("service", "ps", "-f", "colour=red", "web")).startswith(
        "Error response from daemon: invalid filter 'colour=red'")

    scaled = c.ok("service", "scale", "web=4").splitlines()
    assert scaled[0] == "web scaled to 4"
    assert scaled[-1] == "verify: Service web converged"
    assert c.get("deployment", "web", "-n", "default")["spec"]["replicas"] == 4
    assert len([p for p in c.pods("web") if p["status"].get("phase") == "Running"]) == 4

    logs = c.ok("service", "logs", "web").splitlines()
    assert len([line for line in logs if line.endswith(f"| {MARKER} web")]) == 4
    assert all(line.startswith("web.") and "@" in line.split("|")[0] for line in logs)

    pretty = c.ok("service", "inspect", "--pretty", "web")
    assert "Name:\t\tweb" in pretty and " Replicas:\t4" in pretty and " Update order:\tstart-first" in pretty
    assert json.loads(c.ok("service", "inspect", "web"))[0]["kind"] == "Deployment"

    c.ok("service", "update", "--env-add", "GREETING=hello", "web")
    env = c.get("deployment", "web", "-n", "default")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "GREETING", "value": "hello"}]
    rolled = c.ok("service", "rollback", "web").splitlines()
    assert rolled[:2] == ["web", "rollback: manually requested rollback"]
    env = c.get("deployment", "web", "-n", "default")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "GREETING", "value": "hi"}]

    assert c.ok("service", "rm", "web").strip() == "web"
    assert c.up.kubectl("get", "deployment", "web", "-n", "default").returncode != 0
    assert c.up.kubectl("get", "service", "web", "-n", "default").returncode != 0
    wait_until(lambda: not c.pods("web"), what="the service's tasks removed")


def test_service_bad_input(cluster: Cluster) -> None:
    c = cluster
    assert one_line_error(c.bosun("service", "create", "--replicas", "-1", "--name", "neg", "host", "true")) == \
        "error: invalid --replicas -1: it must be 0 or more"
    assert one_line_error(c.bosun("service", "scale", "nosuch=2")) == "Error: no such service: nosuch"
    assert one_line_error(c.bosun("service", "create", "--name", "caps", "Busybox", "true")) == \
        "error: services.caps.image: invalid reference format: invalid image name 'Busybox': repository names " \
        "must be lowercase"
    crash = c.bosun("service", "create", "--name", "crash", "host", "busybox", "false")
    assert crash.rc == 1 and crash.err.strip().splitlines()[-1].startswith("error: service crash: task crash-")
    c.ok("service", "rm", "crash")
    assert one_line_error(c.bosun("service", "scale", "web=x")).startswith("error: invalid scale specifier 'web=x'")
    bad = c.bosun("service", "create", "--name", "bc", "--constraint", "node.labels.zone=b", "host", "true")
    assert one_line_error(bad) == ("error: services.bc.deploy.placement.constraints: invalid constraint expression "
                                   "'node.labels.zone=b': want ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE")
    assert one_line_error(c.bosun("service", "create", "--mode", "global", "--replicas", "2", "host", "true")) == \
        "error: replicas can only be used with replicated or replicated-job mode"
    c.ok("service", "create", "-d", "--name", "everywhere", "--mode", "global", *_sleeper("everywhere"))
    refused = c.bosun("service", "scale", "everywhere=3")
    assert refused.rc == 1
    assert refused.err.strip() == "everywhere: scale can only be used with replicated or replicated-job mode"
    assert c.get("daemonset", "everywhere", "-n", "default")["spec"]["template"]
    c.ok("service", "create", "-d", "--name", "pub1", "-p", "31234:80", *_sleeper("pub1"))
    taken = c.bosun("service", "create", "-d", "--name", "pub2", "-p", "31234:80", *_sleeper("pub2"))
    assert one_line_error(taken) == \
        "Error response from daemon: port '31234/tcp' is already in use by service 'pub1' (namespace default)"
    assert c.up.kubectl("get", "deployment", "pub2", "-n", "default").returncode != 0
    c.ok("service", "rm", "everywhere", "pub1")


def test_node_ls_inspect_update_drain(cluster: Cluster) -> None:
    c = cluster
    ls = c.ok("node", "ls").splitlines()
    assert ls[0].split() == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "STATUS", "ENGINE", "VERSION"]
    rows = {r.split()[1] if not r.split()[1] == "*" else r.split()[2]: r for r in ls[1:]}
    assert set(rows) >= {c.second}
    assert "Ready" in rows[c.second] and "Active" in rows[c.second]
    first = next(n for n in rows if n != c.second)
    assert "Leader" in rows[first]  # the `bosun up` node is the manager holding the lease
    assert rows[first].split()[1] == "*"  # `bosun up` named its node after this machine: the current node
    assert "*" not in rows[c.second].split()
    assert c.ok("node", "ps").splitlines()[0].split()[:2] == ["ID", "NAME"]  # the current node's tasks

    c.ok("node", "update", "--label-add", "disk=ssd", "--label-add", "rack=1", c.second)
    c.ok("node", "update", "--label-rm", "rack", c.second)
    labels = c.get("node", c.second)["metadata"]["labels"]
    assert labels["disk"] == "ssd" and "rack" not in labels
    pretty = c.ok("node", "inspect", "--pretty", c.second)
    assert f"Hostname:\t\t{c.second}" in pretty and " - disk=ssd" in pretty

    c.ok("service", "create", "--name", "spread", "--replicas", "4", *_sleeper("spread"))
    c.ok("node", "update", "--availability", "drain", first)
    assert c.get("node", first)["spec"]["unschedulable"] is True

    def all_on_second() -> bool:
        pods = c.pods("spread")
        return len(pods) == 4 and all(p["spec"].get("nodeName") == c.second and
                                      p["status"].get("phase") == "Running" for p in pods)
    wait_until(all_on_second, what="every task of the drained node moved to the other node")
    drained = next(r for r in c.ok("node", "ls").splitlines() if first in r)
    assert "Drain" in drained
    on_second = c.ok("node", "ps", c.second).splitlines()
    assert len([r for r in on_second[1:] if r.split()[1].startswith("spread.")]) == 4

    c.ok("node", "update", "--availability", "pause", first)
    assert "Pause" in next(r for r in c.ok("node", "ls").splitlines() if first in r)
    c.ok("node", "update", "--availability", "active", first)
    assert not c.get("node", first)["spec"].get("unschedulable")
    assert "Active" in next(r for r in c.ok("node", "ls").splitlines() if first in r)

    assert one_line_error(c.bosun("node", "rm", c.second)) == \
        f"Error response from daemon: node {c.second} is not down and can't be removed (use --force)"
    assert one_line_error(c.bosun("node", "inspect", "nosuchnode")) == \
        "Error response from daemon: node nosuchnode not found"
    c.ok("service", "rm", "spread")


def test_secret_and_config_commands_and_mounts(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    c = cluster
    f = tmp_path_factory.mktemp("files") / "pw.txt"
    f.write_text("hunter2\n")
    secret_id = c.ok("secret", "create", "db_pw", str(f)).strip()
    assert len(secret_id) == 25
    assert c.get("secret", "db-pw", "-n", "default")["data"]["content"] == "aHVudGVyMgo="
    assert one_line_error(c.bosun("secret", "create", "db_pw", str(f))) == \
        "Error response from daemon: secret db_pw already exists"
    c.ok("config", "create", "site", str(f))
    ls = c.ok("secret", "ls").splitlines()
    assert ls[0].split() == ["ID", "NAME", "CREATED"] and ls[1].split()[:2] == [secret_id, "db-pw"]
    assert json.loads(c.ok("secret", "inspect", "db_pw"))[0]["ID"] == secret_id

    c.ok("service", "create", "-d", "--name", "uses", "--secret", "db_pw", "--config", "source=site,target=/etc/site",
         *_sleeper("uses"))
    pod = c.get("deployment", "uses", "-n", "default")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/run/secrets/db_pw"]["name"]]["secret"]["secretName"] == "db-pw"
    assert volumes[mounts["/etc/site"]["name"]]["configMap"]["name"] == "site"
    c.ok("service", "rm", "uses")
    assert c.ok("secret", "rm", "db_pw").strip() == "db_pw"
    assert one_line_error(c.bosun("secret", "rm", "db_pw")) == "Error response from daemon: secret db_pw not found"
    c.ok("config", "rm", "site")


def test_failed_update_rolls_back_by_itself_when_asked(cluster: Cluster) -> None:
    c = cluster
    c.ok("service", "create", "--name", "careful", "--replicas", "1", "--update-failure-action", "rollback",
         *_sleeper("careful"))
    r = c.bosun("service", "update", "--args", "busybox false", "careful")
    assert r.rc == 1, (r.out, r.err)
    assert r.err.strip().startswith("error: service careful: update rolled back: task careful-")
    assert "rollback: update rolled back due to failure or early termination of task" in r.out
    args = c.get("deployment", "careful", "-n", "default")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == _sleeper("careful")[1:]
    paused = c.bosun("service", "update", "--update-failure-action", "pause", "--args", "busybox false", "careful")
    assert paused.rc == 1
    assert "update paused due to failure or early termination of task careful-" in paused.err
    c.ok("service", "rm", "careful")


def test_a_detached_failed_update_rolls_back_on_the_server(cluster: Cluster) -> None:
    """No CLI waits (-d): the server's update monitor sees the new tasks fail and rolls back."""
    c = cluster
    c.ok("service", "create", "--name", "alone", "--replicas", "1", "--update-failure-action", "rollback",
         "--update-monitor", "1s", *_sleeper("alone"))
    try:
        assert c.ok("service", "update", "-d", "--args", "busybox false", "alone").strip() == "alone"

        def status() -> dict[str, Any]:
            ann = c.get("deployment", "alone", "-n", "default")["metadata"].get("annotations") or {}
            return dict(json.loads(ann.get("bosun.io/update-status") or "{}"))

        wait_until(lambda: status().get("state") == "rollback_completed", 90, "the server rolled the update back")
        assert status()["message"] == "rollback completed"
        args = c.get("deployment", "alone", "-n", "default")["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args == _sleeper("alone")[1:]
        events = c.get("events", "-n", "default", "--field-selector", "involvedObject.name=alone")["items"]
        rolled = [e["message"] for e in events if e["reason"] == "UpdateRolledBack"]
        assert rolled and rolled[0].startswith("update of service alone failed (task alone-"), rolled
        pretty = c.ok("service", "inspect", "--pretty", "alone")
        assert "UpdateStatus:\n State:\t\trollback_completed\n" in pretty and "Message:\trollback completed" in pretty
    finally:
        c.ok("service", "rm", "alone")


def test_update_publishes_and_unpublishes_ports(cluster: Cluster) -> None:
    c = cluster
    c.ok("service", "create", "-d", "--name", "ported", *_sleeper("ported"))
    try:
        c.ok("service", "update", "-d", "--publish-add", "31777:80", "ported")
        svc = c.get("service", "ported", "-n", "default")
        assert svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["nodePort"] == 31777
        row = next(r for r in c.ok("service", "ls").splitlines() if " ported " in r)
        assert row.split()[-1] == "*:31777->80/tcp"
        ports = c.get("deployment", "ported", "-n", "default")["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert {"containerPort": 80, "protocol": "TCP"} in ports
        c.ok("service", "update", "-d", "--publish-rm", "31777", "ported")
        assert c.get("service", "ported", "-n", "default")["spec"]["clusterIP"] == "None"
    finally:
        c.ok("service", "rm", "ported")


def test_logs_follow_streams_new_lines(cluster: Cluster) -> None:
    c = cluster
    c.ok("service", "create", "--name", "ticker", "host", "busybox", "sh", "-c",
         f"echo {MARKER} start; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done")
    proc = subprocess.Popen([BOSUN, "--kubeconfig", c.up.kubeconfig, "service", "logs", "-f", "--tail", "1",
                             "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(3)]  # blocks until the lines arrive
        ticks = [int(line.rsplit(" ", 1)[1]) for line in seen]
        assert all(line.startswith("ticker.1.") and "| tick " in line for line in seen), seen
        assert ticks == sorted(ticks) and ticks[2] > ticks[0]  # new lines, as they are written
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        c.ok("service", "rm", "ticker")
    assert proc.returncode == 130


def test_processes_are_gone_after_rm(cluster: Cluster) -> None:
    wait_until(lambda: not [p for p in processes_with(MARKER)], within=30,
               what="no container process of a removed service left")
