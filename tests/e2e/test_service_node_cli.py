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
from datetime import UTC, datetime, timedelta
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


def test_an_earlier_rollback_is_not_taken_for_this_updates_verdict(cluster: Cluster) -> None:
    """Until the monitor takes a new template up (and after an update that changes none), the
    workload still shows the verdict on the update before: a rollback seconds ago, when
    updates follow each other. The waiting CLI tells them apart by the generation the verdict
    names, not by its time: here the earlier rollback's time is ahead of the CLI's clock (as
    a server's may be), and both updates that follow it converge."""
    c = cluster
    c.ok("service", "create", "--name", "later", "--replicas", "1", "--update-monitor", "1s", *_sleeper("later"))
    try:
        def status() -> dict[str, Any]:
            ann = c.get("deployment", "later", "-n", "default")["metadata"].get("annotations") or {}
            return dict(json.loads(ann.get("bosun.io/update-status") or "{}"))

        wait_until(lambda: bool(status().get("revision")), what="the monitor took the first template")
        generation = c.get("deployment", "later", "-n", "default")["metadata"]["generation"]
        ahead = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        earlier = {**status(), "state": "rollback_completed", "started_at": ahead, "completed_at": ahead,
                   "message": "rollback completed", "generation": str(generation)}
        p = c.up.kubectl("annotate", "--overwrite", "deployment", "later", "-n", "default",
                         f"bosun.io/update-status={json.dumps(earlier)}")
        assert p.returncode == 0, p.stderr
        scaled = c.bosun("service", "update", "--replicas", "2", "later")  # no new template: the status stays
        assert scaled.rc == 0, (scaled.out, scaled.err)
        assert "rollback" not in scaled.out and "verify: Service later converged" in scaled.out
        assert status()["state"] == "rollback_completed"
        r = c.bosun("service", "update", "--args", f"busybox sh -c 'echo {MARKER} later; exec sleep 3601'", "later")
        assert r.rc == 0, (r.out, r.err)
        assert "rollback" not in r.out and "verify: Service later converged" in r.out
        assert status()["state"] == "completed"
    finally:
        c.ok("service", "rm", "later")


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
    # SIGINT at its default, as under a terminal: a test run started in the background of a
    # shell script ignores SIGINT, and a child would inherit that and never see the Ctrl-C.
    proc = subprocess.Popen([BOSUN, "--kubeconfig", c.up.kubeconfig, "service", "logs", "-f", "--tail", "1",
                             "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(3)]  # blocks until the lines arrive
        ticks = [int(line.rsplit(" ", 1)[1]) for line in seen]
        assert all(line.startswith("ticker.1.") and "| tick " in line for line in seen), seen
        assert ticks == sorted(ticks) and ticks[2] > ticks[0]  # new lines, as they are written
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # the CLI prints its threads' stacks
            time.sleep(1)
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"service logs -f did not end within 10 s of SIGINT; its stacks:\n{err}") from None
        finally:
            c.ok("service", "rm", "ticker")
    assert proc.returncode == 130


def test_task_flags_of_ps_and_logs(cluster: Cluster) -> None:
    c = cluster
    c.ok("service", "create", "--name", "flags", "--replicas", "2", *_sleeper("flags"))
    try:
        short = c.ok("service", "ps", "flags").splitlines()[1:]
        full = c.ok("service", "ps", "--no-trunc", "flags").splitlines()[1:]
        assert sorted(r.split()[1] for r in full) == ["flags.1", "flags.2"]
        ids = {r.split()[1]: r.split()[0] for r in full}
        assert all(len(i) > 12 for i in ids.values())
        assert {r.split()[1]: r.split()[0] for r in short} == {n: i[:12] for n, i in ids.items()}
        by_id = c.ok("service", "ps", "-f", f"id={ids['flags.2'][:8]}", "flags").splitlines()[1:]
        assert [r.split()[1] for r in by_id] == ["flags.2"]

        def lines(*flags: str) -> list[str]:
            return [line for line in c.ok("service", "logs", *flags, "flags").splitlines()
                    if line.endswith(f" {MARKER} flags")]

        plain = lines("--no-task-ids")
        assert sorted(line.split("@", 1)[0] for line in plain) == ["flags.1", "flags.2"]
        stamped = lines("-t")
        assert len(stamped) == 2
        for line in stamped:
            prefix, text = line.split("    | ", 1)
            assert prefix.split("@", 1)[0].rsplit(".", 1)[1] in {i[:12] for i in ids.values()}
            stamp = text.split(" ", 1)[0]
            assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).year >= 2024, line
        assert len(lines("--since", "1h")) == 2
        assert lines("--since", "2999-01-01T00:00:00Z") == []
        assert one_line_error(c.bosun("service", "logs", "--since", "soon", "flags")).startswith(
            "error: Invalid value for --since: 'soon' is not a duration")
        # The API's sinceTime, as kubectl sends it, checked by the server.
        pod = c.pods("flags")[0]["metadata"]["name"]
        assert c.up.kubectl("logs", pod, "--since-time", "2999-01-01T00:00:00Z").stdout == ""
        assert f"{MARKER} flags" in c.up.kubectl("logs", pod, "--since-time", "2000-01-01T00:00:00Z").stdout
        bad = c.up.kubectl("get", "--raw", f"/api/v1/namespaces/default/pods/{pod}/log?sinceTime=yesterday")
        assert bad.returncode != 0 and "must be an RFC 3339 time" in bad.stderr, bad.stderr
        both = c.up.kubectl("get", "--raw",
                            f"/api/v1/namespaces/default/pods/{pod}/log?sinceSeconds=5&sinceTime=2000-01-01T00:00:00Z")
        assert both.returncode != 0 and "at most one of `sinceTime` or `sinceSeconds`" in both.stderr, both.stderr

        # Several services scaled by one command, as Docker does.
        c.ok("service", "create", "-d", "--name", "flags2", *_sleeper("flags2"))
        scaled = c.ok("service", "scale", "-d", "flags=3", "flags2=2").splitlines()
        assert scaled[:2] == ["flags scaled to 3", "flags2 scaled to 2"], scaled
        assert [c.get("deployment", n, "-n", "default")["spec"]["replicas"] for n in ("flags", "flags2")] == [3, 2]
    finally:
        c.ok("service", "rm", "flags")
        c.bosun("service", "rm", "flags2")


def test_create_and_update_flags_reach_the_workload(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
                                                     ) -> None:
    """Docker's create flags, as typed, end up in the Deployment (-d: nothing waits for the
    tasks); update changes them in place, and refuses what it cannot change."""
    c = cluster
    env_file = tmp_path_factory.mktemp("env") / "svc.env"
    env_file.write_text("FROM_FILE=yes\n")
    c.ok("service", "create", "-d", "--name", "flagged", "--replicas", "1", "--replicas-max-per-node", "1",
         "-e", "A=1", "--env-file", str(env_file), "--label", "team=x", "--container-label", "tier=web",
         "--constraint", "node.labels.disk!=hdd", "--placement-pref", "spread=node.labels.zone",
         "--update-parallelism", "1", "--update-delay", "5s", "--update-monitor", "3s", "--update-order",
         "start-first", "--update-failure-action", "continue", "--update-max-failure-ratio", "0.2",
         "--rollback-parallelism", "2", "--rollback-delay", "1s", "--rollback-monitor", "2s",
         "--rollback-order", "stop-first", "--rollback-failure-action", "pause", "--rollback-max-failure-ratio",
         "0.1", "--restart-condition", "any", "--restart-max-attempts", "3", "--stop-grace-period", "7s",
         "--limit-cpu", "0.5", "--limit-memory", "64M", "--reserve-cpu", "0.1", "--reserve-memory", "16M",
         "--health-cmd", "true", "--health-interval", "2s", "--health-retries", "4", "--health-start-period", "5s",
         "--mount", "type=tmpfs,dst=/scratch", "--endpoint-mode", "dnsrr", "--hostname", "box", "--user", "1000:1001",
         "--workdir", "/tmp", "--entrypoint", "busybox sh -c", "host", f"echo {MARKER} flagged; exec sleep 3600")
    try:
        d = c.get("deployment", "flagged", "-n", "default")
        ann = d["metadata"]["annotations"]
        pod = d["spec"]["template"]["spec"]
        ctr = pod["containers"][0]
        assert d["spec"]["replicas"] == 1 and d["metadata"]["labels"]["team"] == "x"
        assert d["spec"]["template"]["metadata"]["labels"]["tier"] == "web"
        assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        assert json.loads(ann["bosun.io/update-config"]) == {
            "delay": "5s", "failure_action": "continue", "max_failure_ratio": 0.2, "monitor": "3s"}
        assert json.loads(ann["bosun.io/rollback-config"]) == {
            "delay": "1s", "failure_action": "pause", "max_failure_ratio": 0.1, "monitor": "2s", "order": "stop-first",
            "parallelism": 2}
        assert ann["bosun.io/max-replicas-per-node"] == "1"
        env = {e["name"]: e.get("value") for e in ctr["env"]}
        assert env["A"] == "1" and env["FROM_FILE"] == "yes"
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert {"key": "disk", "operator": "NotIn", "values": ["hdd"]} in terms[0]["matchExpressions"]
        assert pod["topologySpreadConstraints"][0]["topologyKey"] == "zone"
        assert pod["terminationGracePeriodSeconds"] == 7 and pod["hostname"] == "box"
        assert ctr["resources"] == {"limits": {"cpu": "500m", "memory": "64Mi"},
                                    "requests": {"cpu": "100m", "memory": "16Mi"}}
        assert ctr["readinessProbe"]["exec"]["command"] == ["sh", "-c", "true"]
        assert (ctr["readinessProbe"]["periodSeconds"], ctr["readinessProbe"]["failureThreshold"]) == (2, 4)
        assert ctr["livenessProbe"]["initialDelaySeconds"] == 5
        mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
        assert next(v for v in pod["volumes"] if v["name"] == mounts["/scratch"])["emptyDir"]["medium"] == "Memory"
        assert ctr["securityContext"]["runAsUser"] == 1000 and ctr["securityContext"]["runAsGroup"] == 1001
        assert ctr["workingDir"] == "/tmp" and ctr["command"] == ["busybox", "sh", "-c"]
        assert c.get("service", "flagged", "-n", "default")["spec"]["clusterIP"] == "None"  # dnsrr: headless

        c.ok("service", "update", "-d", "--user", "2000", "--stop-grace-period", "1m", "--health-cmd",
             "test -d /tmp", "--health-retries", "2", "--rollback-parallelism", "1", "--image", "host",
             "--args", "'exec sleep 3601'", "--force", "--env-rm", "A", "--label-rm", "team", "flagged")
        d = c.get("deployment", "flagged", "-n", "default")
        pod = d["spec"]["template"]["spec"]
        ctr = pod["containers"][0]
        assert ctr["securityContext"]["runAsUser"] == 2000 and "runAsGroup" not in ctr["securityContext"]
        assert pod["terminationGracePeriodSeconds"] == 60 and ctr["args"] == ["exec sleep 3601"]
        assert ctr["readinessProbe"]["exec"]["command"] == ["sh", "-c", "test -d /tmp"]
        assert (ctr["readinessProbe"]["periodSeconds"], ctr["readinessProbe"]["failureThreshold"]) == (2, 2)
        assert ctr["livenessProbe"]["initialDelaySeconds"] == 5  # kept
        assert json.loads(d["metadata"]["annotations"]["bosun.io/rollback-config"])["parallelism"] == 1
        assert "A" not in {e["name"] for e in ctr["env"]} and "team" not in d["metadata"].get("labels", {})
        # Mounts, secrets and configs are added as create adds them, and removed by target or name.
        assert c.bosun("secret", "create", "upd_s", "-", stdin="s").rc == 0
        c.ok("config", "create", "upd_c", str(env_file))
        c.ok("service", "update", "-d", "--mount-add", "type=tmpfs,dst=/more", "--mount-rm", "/scratch",
             "--secret-add", "source=upd_s,target=/etc/s", "--config-add", "upd_c", "flagged")
        pod = c.get("deployment", "flagged", "-n", "default")["spec"]["template"]["spec"]
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "/scratch" not in mounts and volumes[mounts["/more"]]["emptyDir"] == {"medium": "Memory"}
        assert volumes[mounts["/etc/s"]]["secret"]["secretName"] == "upd-s"
        assert volumes[mounts["/upd_c"]]["configMap"]["name"] == "upd-c"
        assert set(volumes) == set(mounts.values())
        c.ok("service", "update", "-d", "--secret-rm", "upd_s", "--config-rm", "upd_c", "flagged")
        pod = c.get("deployment", "flagged", "-n", "default")["spec"]["template"]["spec"]
        assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == ["/more"]
        assert len(pod["volumes"]) == 1
        c.ok("service", "update", "-d", "--no-healthcheck", "flagged")
        ctr = c.get("deployment", "flagged", "-n", "default")["spec"]["template"]["spec"]["containers"][0]
        assert "readinessProbe" not in ctr and "livenessProbe" not in ctr
        assert one_line_error(c.bosun("service", "update", "--user", "www-data", "flagged")).startswith(
            "error: --user 'www-data': only a numeric uid[:gid] can be honoured")
        assert one_line_error(c.bosun("service", "update", "--restart-condition", "none", "flagged")) == \
            "error: --restart-condition cannot be changed by service update"
        assert one_line_error(c.bosun("service", "update", "--health-interval", "5s", "flagged")) == \
            "error: the service has no health check to change: give --health-cmd"

        c.ok("service", "create", "-d", "--name", "batch", "--mode", "replicated-job", "--replicas", "2",
             "--max-concurrent", "1", "host", "true")
        job = c.get("job", "batch", "-n", "default")["spec"]
        assert (job["completions"], job["parallelism"]) == (2, 1)
    finally:
        c.ok("service", "rm", "flagged")
        c.bosun("service", "rm", "batch")
        c.bosun("secret", "rm", "upd_s")
        c.bosun("config", "rm", "upd_c")


def test_roles_are_given_and_taken_as_docker_allows(cluster: Cluster) -> None:
    c = cluster
    first = next(n["metadata"]["name"] for n in c.get("nodes")["items"] if n["metadata"]["name"] != c.second)
    last = "Error response from daemon: attempting to demote the last manager of the swarm"
    assert one_line_error(c.bosun("node", "demote", first)) == last
    assert one_line_error(c.bosun("node", "update", "--role", "worker", "--label-add", "x=y", first)) == last
    assert "x" not in c.get("node", first)["metadata"]["labels"]  # a refused update changes nothing
    assert c.ok("node", "promote", first).strip() == f"Node {first} is already a manager."

    # The plain agent's node takes the manager role; no manager runs there: Unreachable.
    assert c.ok("node", "update", "--role", "manager", c.second).strip() == c.second
    assert "node-role.kubernetes.io/control-plane" in c.get("node", c.second)["metadata"]["labels"]
    row = next(r.split() for r in c.ok("node", "ls").splitlines() if c.second in r.split())
    assert "Unreachable" in row
    # Demoting the one reachable manager would leave one unreachable of one: no quorum.
    assert one_line_error(c.bosun("node", "demote", first)) == (
        "Error response from daemon: can't remove member from the raft: this would result in a loss of quorum")
    assert c.ok("node", "demote", c.second).strip() == f"Manager {c.second} demoted in the swarm."
    assert c.ok("node", "demote", c.second).strip() == f"Node {c.second} is already a worker."
    assert "node-role.kubernetes.io/control-plane" not in c.get("node", c.second)["metadata"]["labels"]


def test_config_ls_inspect_and_a_secret_from_stdin(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
                                                   ) -> None:
    c = cluster
    f = tmp_path_factory.mktemp("configs") / "site.conf"
    f.write_text("listen 80\n")
    config_id = c.ok("config", "create", "--label", "app=web", "site2", str(f)).strip()
    try:
        ls = c.ok("config", "ls").splitlines()
        assert ls[0].split() == ["ID", "NAME", "CREATED"]
        assert [config_id, "site2"] in [r.split()[:2] for r in ls[1:]]
        assert config_id in c.ok("config", "ls", "-q").split()
        shown = json.loads(c.ok("config", "inspect", "site2"))
        assert shown[0]["ID"] == config_id and shown[0]["Spec"]["Name"] == "site2"
        assert shown[0]["Spec"]["Labels"]["app"] == "web"
        assert c.get("configmap", "site2", "-n", "default")["data"]["content"] == "listen 80\n"
        assert one_line_error(c.bosun("config", "inspect", "nosuch")) == \
            "Error response from daemon: config nosuch not found"
    finally:
        c.ok("config", "rm", "site2")
    made = c.bosun("secret", "create", "piped", "-", stdin="from-stdin")
    assert made.rc == 0, made.err
    try:
        assert c.get("secret", "piped", "-n", "default")["data"]["content"] == "ZnJvbS1zdGRpbg=="
    finally:
        c.ok("secret", "rm", "piped")


def test_processes_are_gone_after_rm(cluster: Cluster) -> None:
    wait_until(lambda: not [p for p in processes_with(MARKER)], within=30,
               what="no container process of a removed service left")
