"""`bosun swarm init --store etcd`: three managers, each with its own etcd member (no etcd of
the user's), every part a real process as a user starts it. The members speak TLS with a CA
of their own; the swarm survives SIGKILL of the leading manager (and its member); a manager
that leaves takes its member out of the etcd cluster.

One swarm for the module; the tests run in file order and the last ones take it apart."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.helpers import free_port, one_line_error, wait_until
from tests.e2e.swarm_procs import Member, Swarm, bosun, kill_processes_under, kubectl, node_rows, ok

from bosun.store.etcd import EtcdTLS
from bosun.store.etcdnode import client_endpoints, client_tls, healthy

MARKER = f"embedded-{os.getpid()}"


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    shm = Path("/dev/shm")  # etcd fsyncs every write: tmpfs when there is one
    root = Path(tempfile.mkdtemp(prefix="bosun-swarm-embedded-", dir=shm if shm.is_dir() else None))
    s = Swarm(root, "etcd")
    try:
        yield s
    finally:
        try:
            s.stop()
        finally:
            kill_processes_under(root)  # the killed leader's containers outlive it
            shutil.rmtree(root, ignore_errors=True)


def etcd_ports() -> tuple[str, str]:
    return "--etcd-ports", f"{free_port()}:{free_port()}"


@pytest.fixture(scope="module")
def managers(swarm: Swarm) -> list[Member]:
    m1 = swarm.start("m1", "init", "--store", "etcd", extra=etcd_ports())
    token = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "manager").strip()
    m2 = swarm.start("m2", "join", "--token", token, m1.address, extra=etcd_ports())
    m3 = swarm.start("m3", "join", "--token", token, m1.address, extra=etcd_ports())
    return [m1, m2, m3]


def members(via: Member) -> list[str]:
    """The etcd cluster's members' client addresses, asked with ``via``'s client certificate."""
    return asyncio.run(client_endpoints([_endpoint(via)], client_tls(via.data_dir)))


def _endpoint(m: Member) -> str:
    """Its etcd member's client address, from the ``--etcd-ports`` it was started with."""
    argv = [str(a) for a in m.proc.args] if isinstance(m.proc.args, list) else []
    return f"127.0.0.1:{argv[argv.index('--etcd-ports') + 1].split(':', 1)[0]}"


def test_three_managers_three_members(managers: list[Member]) -> None:
    m1, m2, m3 = managers
    joined = "This node joined a swarm as a manager."
    assert joined in m2.output and joined in m3.output
    assert sorted(members(m1)) == sorted(_endpoint(m) for m in managers)
    rows = node_rows(m1.kubeconfig)
    assert sorted(r[3] for r in rows.values()) == ["Leader", "Reachable", "Reachable"]
    # `bosun server --join` runs no member: it is told to use `swarm join`.
    token = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "manager").strip()
    plain = bosun("server", "--data-dir", str(m1.data_dir.parent / "plain"), "--join", m1.address, "--token", token)
    assert one_line_error(plain).startswith("error: this swarm keeps its state in etcd members run by its managers")


def test_members_speak_tls_with_their_own_ca_only(managers: list[Member]) -> None:
    m1 = managers[0]
    endpoint = _endpoint(m1)
    assert asyncio.run(healthy(endpoint, client_tls(m1.data_dir)))
    assert not asyncio.run(healthy(endpoint, None))  # plain gRPC: refused
    # A certificate of the cluster CA (the one users' client certificates come from) is refused.
    pki = m1.data_dir / "pki"
    cluster_signed = EtcdTLS(client_tls(m1.data_dir).ca, (pki / "apiserver.crt").read_bytes(),
                             (pki / "apiserver.key").read_bytes())
    assert not asyncio.run(healthy(endpoint, cluster_signed))


def test_a_manager_that_leaves_takes_its_member_out_and_may_join_again(swarm: Swarm, managers: list[Member]) -> None:
    m1, _, m3 = managers
    assert ok("swarm", "leave", "--force", "--data-dir", str(m3.data_dir)).strip() == "Node left the swarm."
    assert m3.proc.wait(30) is not None
    assert not (m3.data_dir / "etcd").exists(), m3.output
    assert sorted(members(m1)) == sorted(_endpoint(m) for m in managers[:2])
    token = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "manager").strip()
    managers[2] = swarm.start("m3", "join", "--token", token, m1.address, extra=etcd_ports())
    assert sorted(members(m1)) == sorted(_endpoint(m) for m in managers)
    wait_until(lambda: node_rows(m1.kubeconfig)["m3"][3] == "Reachable", within=60, what="m3 Reachable again")


@pytest.fixture(scope="module")
def worker(swarm: Swarm, managers: list[Member]) -> Member:
    token = ok("--kubeconfig", managers[0].kubeconfig, "swarm", "join-token", "-q", "worker").strip()
    return swarm.start("w1", "join", "--token", token, managers[0].address, manager=False, extra=etcd_ports())


def lease_renewed(kubeconfig: str, node: str) -> Callable[[], bool]:
    """Whether ``node``'s agent renewed its Lease since this was called."""
    def renew_time() -> str:
        return kubectl(kubeconfig, "get", "lease", "-n", "kube-node-lease", node, "-o",
                       "jsonpath={.spec.renewTime}").stdout

    before = renew_time()
    return lambda: renew_time() not in ("", before)


def test_a_promoted_worker_is_a_fourth_member_until_demoted(managers: list[Member], worker: Member) -> None:
    m1 = managers[0]
    assert "This node joined a swarm as a worker." in worker.output
    assert ok("--kubeconfig", m1.kubeconfig, "node", "promote", "w1").strip() == \
        "Node w1 promoted to a manager in the swarm."
    wait_until(lambda: f"This node was promoted: it runs a manager on {worker.address}." in worker.output,
               within=120, what="w1 to start its manager and its etcd member")
    assert sorted(members(m1)) == sorted(_endpoint(m) for m in [*managers, worker])
    wait_until(lambda: node_rows(m1.kubeconfig)["w1"][3] == "Reachable", within=60, what="w1 Reachable")
    # The same kubeconfig (m1's: its CA, its admin token) works against w1; a Secret written
    # through m1 reads back through w1's store client, its own etcd member's cluster.
    made = kubectl(m1.kubeconfig, "create", "secret", "generic", "via-m1", "--from-literal=k=fourth")
    assert made.returncode == 0, made.stderr
    got = kubectl(m1.kubeconfig, "get", "secret", "via-m1", "-o", "jsonpath={.data.k}", server=worker.address)
    assert got.returncode == 0 and base64.b64decode(got.stdout) == b"fourth", got.stderr

    assert ok("--kubeconfig", m1.kubeconfig, "node", "demote", "w1").strip() == "Manager w1 demoted in the swarm."
    wait_until(lambda: "This node was demoted: its manager stopped." in worker.output, within=90,
               what="w1 to stop its manager")
    assert sorted(members(m1)) == sorted(_endpoint(m) for m in managers)
    assert not (worker.data_dir / "etcd").exists(), worker.output
    wait_until(lambda: node_rows(m1.kubeconfig)["w1"][3] == "", within=30, what="w1 a worker again")
    assert kubectl(m1.kubeconfig, "get", "nodes", server=worker.address).returncode != 0
    wait_until(lease_renewed(m1.kubeconfig, "w1"), within=60, what="w1's agent to carry on")
    assert node_rows(m1.kubeconfig)["w1"][1] == "Ready"
    kubectl(m1.kubeconfig, "delete", "secret", "via-m1")


def test_a_manager_that_joined_is_demoted_from_afar_and_carries_on_as_a_worker(
    managers: list[Member], worker: Member,
) -> None:
    m1, m3 = managers[0], managers[2]
    assert ok("--kubeconfig", m1.kubeconfig, "node", "demote", "m3").strip() == "Manager m3 demoted in the swarm."
    wait_until(lambda: "This node was demoted: its manager stopped." in m3.output, within=90,
               what="m3 to stop its manager")
    assert m3.proc.poll() is None  # the node's process carries on, as a worker
    assert sorted(members(m1)) == sorted(_endpoint(m) for m in managers[:2])
    assert not (m3.data_dir / "etcd").exists(), m3.output
    assert json.loads((m3.data_dir / "swarm.json").read_text())["role"] == "worker"
    wait_until(lambda: node_rows(m1.kubeconfig)["m3"][3] == "", within=30, what="m3 shown as a worker")
    assert kubectl(m1.kubeconfig, "get", "nodes", server=m3.address).returncode != 0
    wait_until(lease_renewed(m1.kubeconfig, "m3"), within=60, what="m3's agent to renew its Lease via m1 or m2")
    rows = node_rows(m1.kubeconfig)
    assert rows["m3"][1] == "Ready"
    assert sorted(r[3] for r in rows.values() if r[3]) == ["Leader", "Reachable"]
    # Promoted again, it runs a manager and a member again, as a promoted worker does (the
    # tests below want three managers). w1 leaves (a worker: no --force) and its node is removed.
    assert ok("--kubeconfig", m1.kubeconfig, "node", "promote", "m3").strip() == \
        "Node m3 promoted to a manager in the swarm."
    wait_until(lambda: f"This node was promoted: it runs a manager on {m3.address}." in m3.output, within=120,
               what="m3 to run a manager again")
    assert sorted(members(m1)) == sorted(_endpoint(m) for m in managers)
    wait_until(lambda: node_rows(m1.kubeconfig)["m3"][3] == "Reachable", within=60, what="m3 a manager again")
    assert json.loads((m3.data_dir / "swarm.json").read_text())["role"] == "manager"
    assert ok("swarm", "leave", "--data-dir", str(worker.data_dir)).strip() == "Node left the swarm."
    assert worker.proc.wait(30) is not None
    assert ok("--kubeconfig", m1.kubeconfig, "node", "rm", "--force", "w1").strip() == "w1"
    assert "w1" not in node_rows(m1.kubeconfig)


STACK = """
services:
  db:
    image: host
    command: [busybox, sleep, "3600"]
    healthcheck: {test: [CMD, busybox, "true"], interval: 1s, retries: 3}
    deploy:
      replicas: 2
      placement: {constraints: [node.role==manager]}
  beacon:
    image: host
    command: [busybox, sleep, "3600"]
    deploy: {mode: global}
  web:
    image: host
    command: [busybox, sleep, "3600"]
    environment: {VERSION: "%s"}
    secrets: [token]
    depends_on:
      db: {condition: service_healthy}
    deploy:
      replicas: 2
      update_config: {parallelism: 1, delay: 0s, order: start-first}
secrets:
  token: {file: ./token.txt}
"""


def services(kubeconfig: str) -> dict[str, str]:
    """`bosun service ls` as {name: replicas}."""
    lines = ok("--kubeconfig", kubeconfig, "service", "ls").splitlines()
    return {cells[1]: cells[3] for cells in (line.split() for line in lines[1:])}


def pods(kubeconfig: str) -> list[dict[str, Any]]:
    """The stack's live pods."""
    got = kubectl(kubeconfig, "get", "pods", "-n", "app", "-o", "json")
    assert got.returncode == 0, got.stderr
    return [p for p in json.loads(got.stdout)["items"] if not p["metadata"].get("deletionTimestamp")]


def test_a_stack_with_constraints_global_mode_health_dependencies_and_secrets_rolls(
    swarm: Swarm, managers: list[Member],
) -> None:
    m1 = managers[0]
    (swarm.root / "token.txt").write_text("s3cret")
    compose = swarm.root / "app.yml"
    compose.write_text(STACK % "1")
    lines = ok("--kubeconfig", m1.kubeconfig, "stack", "deploy", "-c", str(compose), "app").splitlines()
    waited = lines.index("Waiting for service app_db to be healthy")
    assert lines.index("Creating service app_db") < waited < lines.index("Creating service app_web")
    want = {"app_db": "2/2", "app_beacon": "3/3", "app_web": "2/2"}  # global: one per node (three managers)
    wait_until(lambda: services(m1.kubeconfig) == want, within=120, what=f"the stack to converge to {want}")
    db_nodes = [p["spec"].get("nodeName") for p in pods(m1.kubeconfig) if p["metadata"]["name"].startswith("db-")]
    assert len(db_nodes) == 2 and set(db_nodes) <= {m.name for m in managers}
    secret = kubectl(m1.kubeconfig, "get", "secrets", "-n", "app", "-o", "jsonpath={.items[*].data}")
    assert base64.b64encode(b"s3cret").decode() in secret.stdout, secret.stderr
    # A changed service rolls; the others are left alone.
    before = [p["metadata"]["name"] for p in pods(m1.kubeconfig) if not p["metadata"]["name"].startswith("web-")]
    compose.write_text(STACK % "2")
    ok("--kubeconfig", m1.kubeconfig, "stack", "deploy", "-c", str(compose), "app")

    def web_rolled() -> bool:
        web = [p for p in pods(m1.kubeconfig) if p["metadata"]["name"].startswith("web-")]
        return len(web) == 2 and all({"name": "VERSION", "value": "2"} in p["spec"]["containers"][0].get("env", [])
                                     and p["status"].get("phase") == "Running" for p in web)

    wait_until(web_rolled, within=120, what="both web tasks on VERSION=2")
    after = {p["metadata"]["name"] for p in pods(m1.kubeconfig)}
    assert before and set(before) <= after
    assert services(m1.kubeconfig) == want


def test_the_swarm_survives_the_leader_and_its_member_killed(managers: list[Member]) -> None:
    m1 = managers[0]
    made = kubectl(m1.kubeconfig, "create", "secret", "generic", "kept", "--from-literal=k=before-the-kill")
    assert made.returncode == 0, made.stderr
    leader = next(m for m in managers if node_rows(m1.kubeconfig)[m.name][3] == "Leader")
    survivors = [m for m in managers if m is not leader]
    leader.stop(signal.SIGKILL)  # the whole process group: its etcd member dies with it
    wait_until(lambda: not asyncio.run(healthy(_endpoint(leader), client_tls(leader.data_dir))), within=30,
               what="the leader's etcd member to be gone")

    def another_leads() -> bool:
        try:
            rows = node_rows(survivors[0].kubeconfig)
        except AssertionError:  # a 503 while etcd elects a new leader: ask again
            return False
        return rows[leader.name][3] == "Unreachable" and any(rows[m.name][3] == "Leader" for m in survivors)

    wait_until(another_leads, within=90, what="a surviving manager to lead")
    got = kubectl(m1.kubeconfig, "get", "secret", "kept", "-o", "jsonpath={.data.k}", server=survivors[0].address)
    assert got.returncode == 0 and base64.b64decode(got.stdout) == b"before-the-kill", got.stderr
    # The stack keeps running, and `bosun service ls` answers through the same kubeconfig.
    wait_until(lambda: {k: v for k, v in services(m1.kubeconfig).items() if k != "app_beacon"} ==
               {"app_db": "2/2", "app_web": "2/2"}, within=120, what="the stack's services to be whole again")
    out = ok("--kubeconfig", survivors[1].kubeconfig, "service", "create", "--name", "after", "--replicas", "2",
             "--constraint", "node.role==manager", "host", "busybox", "sh", "-c", f"echo {MARKER}; exec sleep 3600")
    assert out.splitlines()[-1] == "verify: Service after converged"


def test_a_leave_that_would_break_the_quorum_keeps_the_member(managers: list[Member]) -> None:
    # Two members of three are left; taking one out would leave the dead one's vote counted
    # with a single live member: etcd refuses, the manager still leaves, its member's data stays.
    alive = [m for m in managers if m.proc.poll() is None]
    assert len(alive) == 2
    leaving = alive[-1]
    # Docker's quorum safeguard: demoting it would leave one reachable manager of two.
    refused = one_line_error(bosun("--kubeconfig", alive[0].kubeconfig, "node", "demote", leaving.name))
    assert refused == "Error response from daemon: can't remove member from the raft: this would result in a loss " \
        "of quorum"
    assert node_rows(alive[0].kubeconfig)[leaving.name][3] in ("Leader", "Reachable")
    assert ok("swarm", "leave", "--force", "--data-dir", str(leaving.data_dir)).strip() == "Node left the swarm."
    assert leaving.proc.wait(30) is not None
    assert (leaving.data_dir / "etcd" / "data").is_dir()
    assert any("etcd member" in line and "not removed" in line for line in leaving.output), leaving.output
