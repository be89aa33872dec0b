"""`bosun swarm` with two managers on one etcd and a worker, every part a real process started
as a user starts it: the managers serve one identity (one kubeconfig, one admin token, Secrets
readable through either), tokens rotate, and when the leading manager is killed the other
serves the same clients, runs the controllers, and the worker's agent moves to it.

One cluster for the module (three processes and an etcd); the tests run in file order and
the last ones take it apart (kill the leader, leave)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.helpers import free_port, one_line_error, wait_until
from tests.e2e.swarm_procs import Member, Swarm, bosun, kill_processes_under, kubectl, node_rows, ok
from tests.fixtures.etcd import start_etcd

from bosun.client.kubeconfig import load_kubeconfig

MARKER = f"swarm-{os.getpid()}"


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    shm = Path("/dev/shm")
    etcd_dir = Path(tempfile.mkdtemp(prefix="bosun-swarm-etcd-", dir=shm if shm.is_dir() else None))
    etcd, endpoint = start_etcd(etcd_dir)
    s = Swarm(tmp_path_factory.mktemp("swarm"), f"etcd://{endpoint}")
    try:
        yield s
    finally:
        try:
            s.stop()
        finally:
            kill_processes_under(s.root)  # what a manager killed outright left running
            etcd.kill()
            etcd.wait()
            shutil.rmtree(etcd_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def m1(swarm: Swarm) -> Member:
    return swarm.start("m1", "init", "--store", swarm.store)


@pytest.fixture(scope="module")
def w1(swarm: Swarm, m1: Member) -> Member:
    """A worker that joined through m1 while it was the only manager."""
    token = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "worker").strip()
    return swarm.start("w1", "join", "--token", token, m1.address, manager=False, labels="zone=w")


@pytest.fixture(scope="module")
def m2(swarm: Swarm, m1: Member, w1: Member) -> Member:
    token = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "manager").strip()
    return swarm.start("m2", "join", "--token", token, m1.address)


def test_init_prints_dockers_lines_and_a_join_command_that_works(swarm: Swarm, m1: Member, m2: Member) -> None:
    out = m1.output
    head = next(i for i, line in enumerate(out) if line.startswith("Swarm initialized"))
    node_id = node_rows(m1.kubeconfig)["m1"][0].split()[0]
    assert out[head] == f"Swarm initialized: current node ({node_id}) is now a manager."
    assert out[head + 1:head + 4] == ["", "To add a worker to this swarm, run the following command:", ""]
    worker = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "worker").strip()
    assert out[head + 4] == f"    bosun swarm join --token {worker} {m1.address}"
    assert out[head + 6] == ("To add a manager to this swarm, run 'bosun swarm join-token manager' "
                             "and follow the instructions.")
    shown = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "manager").splitlines()
    assert shown[0] == "To add a manager to this swarm, run the following command:"
    assert shown[2].startswith("    bosun swarm join --token SWMTKN-1-") and shown[2].endswith(f" {m1.address}")
    assert "This node joined a swarm as a manager." in m2.output
    # A machine is a member once.
    again = bosun("swarm", "init", "--data-dir", str(m1.data_dir), "--advertise-addr", f"127.0.0.1:{free_port()}")
    assert one_line_error(again).startswith("Error response from daemon: This node is already part of a swarm.")


def test_managers_serve_one_identity(m1: Member, m2: Member) -> None:
    one, two = load_kubeconfig(m1.kubeconfig), load_kubeconfig(m2.kubeconfig)
    assert (one.ca_data, one.token) == (two.ca_data, two.token)  # only the server differs
    name = f"s-{os.getpid()}"
    made = kubectl(m1.kubeconfig, "create", "secret", "generic", name, "--from-literal=k=written-via-m1")
    assert made.returncode == 0, made.stderr
    try:
        # m1's kubeconfig (its CA and admin token) against m2: the Secret reads back.
        got = kubectl(m1.kubeconfig, "get", "secret", name, "-o", "jsonpath={.data.k}", server=m2.address)
        assert got.returncode == 0, got.stderr
        assert base64.b64decode(got.stdout) == b"written-via-m1"
    finally:
        kubectl(m1.kubeconfig, "delete", "secret", name)
    # A service-account token signed by m1 is accepted by m2 (one signing key).
    made = kubectl(m1.kubeconfig, "create", "token", "default")
    assert made.returncode == 0, made.stderr
    who = kubectl(m1.kubeconfig, "auth", "whoami", "--token", made.stdout.strip(),
                  "-o", "jsonpath={.status.userInfo.username}", server=m2.address)
    assert who.returncode == 0 and who.stdout == "system:serviceaccount:default:default", who.stderr


def test_node_ls_shows_managers_and_the_current_node(m1: Member, m2: Member, w1: Member) -> None:
    assert "This node joined a swarm as a worker." in w1.output
    via_m1, via_m2 = node_rows(m1.kubeconfig), node_rows(m2.kubeconfig)
    assert via_m1["m1"][0].endswith(" *") and not via_m1["m2"][0].endswith(" *")
    assert via_m2["m2"][0].endswith(" *") and not via_m2["m1"][0].endswith(" *")
    assert via_m1["m1"][3] == "Leader" and via_m1["m2"][3] == "Reachable" and via_m1["w1"][3] == ""
    assert all(row[1] == "Ready" for row in via_m1.values())


def test_a_promoted_worker_runs_a_manager_until_demoted(m1: Member, m2: Member, w1: Member) -> None:
    assert ok("--kubeconfig", m1.kubeconfig, "node", "promote", "w1").strip() == \
        "Node w1 promoted to a manager in the swarm."
    wait_until(lambda: f"This node was promoted: it runs a manager on {w1.address}." in w1.output, within=90,
               what="w1 to start its manager")
    wait_until(lambda: node_rows(m1.kubeconfig)["w1"][3] == "Reachable", within=30, what="w1 Reachable")
    # It serves the swarm's identity: m1's kubeconfig works against it, Secrets included.
    got = kubectl(m1.kubeconfig, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}", server=w1.address)
    assert got.returncode == 0 and {"m1", "m2", "w1"} <= set(got.stdout.split()), got.stderr
    assert json.loads((w1.data_dir / "swarm.json").read_text())["role"] == "manager"
    # A plain worker credential cannot ask for the manager token.
    worker_token = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "worker").strip()
    asked = kubectl(m1.kubeconfig, "create", "--raw", "/bosun/v1/swarm/promotion", "-f", "-", server=m1.address,
                    token=worker_token)
    assert asked.returncode != 0 and "is not a node" in asked.stderr, asked.stderr

    assert ok("--kubeconfig", m1.kubeconfig, "node", "demote", "w1").strip() == "Manager w1 demoted in the swarm."
    wait_until(lambda: "This node was demoted: its manager stopped." in w1.output, within=60,
               what="w1 to stop its manager")
    wait_until(lambda: node_rows(m1.kubeconfig)["w1"][3] == "", within=30, what="w1 a worker again")
    gone = kubectl(m1.kubeconfig, "get", "nodes", server=w1.address)
    assert gone.returncode != 0
    assert json.loads((w1.data_dir / "swarm.json").read_text())["role"] == "worker"
    assert node_rows(m1.kubeconfig)["w1"][1] == "Ready"  # its agent carried on throughout


def test_rotated_and_worker_tokens_are_refused_and_register_nothing(swarm: Swarm, m1: Member, w1: Member) -> None:
    old = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "worker").strip()
    rotated = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "--rotate", "worker").splitlines()
    assert rotated[0] == "Successfully rotated worker join token."
    new = rotated[4].split("--token ", 1)[1].split()[0]
    assert new != old and new.startswith("SWMTKN-1-")
    before = set(node_rows(m1.kubeconfig))
    late = bosun("swarm", "join", "--token", old, "--data-dir", str(swarm.root / "late"), "--name", "late",
                 "--runtime", "process", m1.address)
    assert one_line_error(late) == ("error: the join token is not valid for this swarm (wrong or rotated): "
                                    "nothing was registered")
    # A worker token cannot make a manager (the store-level refusal: tests/integration/test_cluster_identity.py).
    as_manager = bosun("server", "--data-dir", str(swarm.root / "late"), "--join", m1.address, "--token", new)
    assert one_line_error(as_manager) == ("error: this is a worker join token: a manager joins with the manager "
                                          "token (bosun swarm join-token manager)")
    # Nor does a second `swarm init` on the same store: it is a swarm already.
    other = bosun("swarm", "init", "--store", swarm.store, "--data-dir", str(swarm.root / "late"), "--name", "late",
                  "--advertise-addr", f"127.0.0.1:{free_port()}", "--runtime", "process", "--no-node-network")
    assert one_line_error(other) == ("error: this store already holds a swarm: join it with its manager token "
                                     "(bosun swarm join --token TOKEN HOST:PORT)")
    # The manager token rotates the same way (-q: only the new token); the managers that
    # joined with the old one carry on (the test below fails over to m2).
    old_manager = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "manager").strip()
    new_manager = ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "--rotate", "-q", "manager").strip()
    assert new_manager.startswith("SWMTKN-1-") and new_manager not in (old_manager, new)
    assert ok("--kubeconfig", m1.kubeconfig, "swarm", "join-token", "-q", "manager").strip() == new_manager
    late_manager = bosun("swarm", "join", "--token", old_manager, "--data-dir", str(swarm.root / "late"),
                         "--name", "late", "--runtime", "process", m1.address)
    assert one_line_error(late_manager) == ("error: the join token is not valid for this swarm (wrong or rotated): "
                                            "nothing was registered")
    after = node_rows(m1.kubeconfig)
    assert set(after) == before and not (swarm.root / "late" / "swarm.json").exists()
    assert after["w1"][1] == "Ready"  # the worker that joined with the old token is untouched


def test_the_other_manager_takes_over_when_the_leader_is_killed(m1: Member, m2: Member, w1: Member) -> None:
    lease_before = kubectl(m2.kubeconfig, "get", "lease", "-n", "kube-node-lease", "w1", "-o",
                           "jsonpath={.spec.renewTime}").stdout
    # w1 joined before m2 existed: it learns of m2 from the managers' Leases; so does m1's kubeconfig.
    learned = f"Manager {m2.address} joined the swarm: this node moves to it when needed."
    wait_until(lambda: learned in w1.output, within=60, what="w1 to learn of m2")
    wait_until(lambda: load_kubeconfig(m1.kubeconfig).servers == [f"https://{m2.address}"], within=60,
               what="m1's kubeconfig to name m2")
    m1.stop(signal.SIGKILL)

    def m2_leads() -> bool:  # asked through m1's kubeconfig: the bosun CLI moves to m2 by itself
        rows = node_rows(m1.kubeconfig)
        return rows["m2"][3] == "Leader" and rows["m1"][3] == "Unreachable" and rows["m2"][0].endswith(" *")

    wait_until(m2_leads, within=60, what="m2 to lead, m1 unreachable")
    # The same kubeconfig (m1's) works against m2 with kubectl.
    nodes = kubectl(m1.kubeconfig, "get", "nodes", "-o", "json", server=m2.address)
    assert nodes.returncode == 0, nodes.stderr
    assert {n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]} >= {"m1", "m2", "w1"}
    # The worker's agent, which talked to m1 only, carries on through m2.
    wait_until(lambda: kubectl(m2.kubeconfig, "get", "lease", "-n", "kube-node-lease", "w1", "-o",
                               "jsonpath={.spec.renewTime}").stdout not in ("", lease_before),
               within=60, what="w1's agent to renew its lease through m2")
    # Controllers and the scheduler run on m2: a service converges on the worker.
    out = ok("--kubeconfig", m1.kubeconfig, "service", "create", "--name", "after", "--replicas", "2",
             "--constraint", "node.labels.zone==w", "host", "busybox", "sh", "-c", f"echo {MARKER}; exec sleep 3600")
    assert out.splitlines()[-1] == "verify: Service after converged"
    assert node_rows(m2.kubeconfig)["w1"][1] == "Ready"


def test_leave(swarm: Swarm, m2: Member, w1: Member) -> None:
    refused = one_line_error(bosun("swarm", "leave", "--data-dir", str(m2.data_dir)))
    assert refused.startswith("Error response from daemon: You are attempting to leave the swarm on a node that is "
                              "participating as a manager.")
    assert ok("swarm", "leave", "--data-dir", str(w1.data_dir)).strip() == "Node left the swarm."
    assert w1.proc.wait(10) is not None and not (w1.data_dir / "swarm.json").exists()
    again = one_line_error(bosun("swarm", "leave", "--data-dir", str(w1.data_dir)))
    assert again == "Error response from daemon: This node is not part of a swarm"
    assert ok("swarm", "leave", "--force", "--data-dir", str(m2.data_dir)).strip() == "Node left the swarm."
    assert m2.proc.wait(10) is not None
