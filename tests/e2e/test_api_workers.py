"""`bosun server --api-workers 2`: what clients see is what one API process gives them.

Writes go through connections to one process, reads and watches through new connections that
the other process accepted (checked from /proc, not assumed): resourceVersions still grow,
a stale update is still 409, a read right after a write sees it, and every watcher sees the
same events in the same order. kubectl works; the server stops leaving no worker behind; a
worker that dies is replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.api_workers_env import (
    Server,
    api_server,
    by_process,
    children,
    is_worker,
    namespace_furnished,
    next_event,
)
from tests.e2e.helpers import BOSUN, Kubectl


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with api_server(tmp_path_factory.mktemp("api-workers"), 2) as s:
        yield s


def configmap(ns: str, name: str, value: str, rv: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": value}}


def test_two_processes_serve_one_consistent_api(server: Server) -> None:
    check_one_api(server, "workers-sqlite")


def test_on_etcd_too(etcd_endpoint: str, tmp_path: Path) -> None:
    """On etcd each worker is a kube-apiserver of its own on the same etcd."""
    with api_server(tmp_path, 2, "--store", f"etcd://{etcd_endpoint}") as s:
        check_one_api(s, "workers-etcd")


def check_one_api(server: Server, ns: str) -> None:
    assert len(server.pids()) == 2, server.pids()
    cm = f"/api/v1/namespaces/{ns}/configmaps"
    conns = by_process(server)
    (a, *_), (b, *_) = conns.values()
    status, _ = a.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": ns}})
    assert status == 201
    namespace_furnished(a, ns)
    try:
        status, listed = b.request("GET", cm)
        assert status == 200
        start = listed["metadata"]["resourceVersion"]
        # Watches on new connections until each process serves at least one.
        watches = []
        for pid, watch_conns in by_process(server).items():
            resp = watch_conns[0].watch(f"{cm}?watch=1&resourceVersion={start}")
            watches.append((pid, resp))
        writes: list[tuple[str, str, str]] = []
        last = 0
        for i in range(12):
            writer, reader = (a, b) if i % 2 == 0 else (b, a)
            status, made = writer.request("POST", cm, configmap(ns, f"cm-{i}", "one"))
            assert status == 201, made
            rv = made["metadata"]["resourceVersion"]
            assert int(rv) > last, "resourceVersions must grow across API processes"
            last = int(rv)
            writes.append(("ADDED", f"cm-{i}", rv))
            # Read-your-writes on the other process: a GET and a list see it at once.
            status, got = reader.request("GET", f"{cm}/cm-{i}")
            assert status == 200 and got["metadata"]["resourceVersion"] == rv
            status, listed = reader.request("GET", cm)
            assert f"cm-{i}" in [o["metadata"]["name"] for o in listed["items"]]
            assert int(listed["metadata"]["resourceVersion"]) >= last
        # Compare-and-swap across processes: updated through one, a stale update through the
        # other is 409 Conflict; a create of a taken name is 409 AlreadyExists.
        status, first = a.request("GET", f"{cm}/cm-0")
        stale = first["metadata"]["resourceVersion"]
        status, updated = a.request("PUT", f"{cm}/cm-0", configmap(ns, "cm-0", "two", stale))
        assert status == 200
        writes.append(("MODIFIED", "cm-0", updated["metadata"]["resourceVersion"]))
        status, refused = b.request("PUT", f"{cm}/cm-0", configmap(ns, "cm-0", "three", stale))
        assert status == 409 and refused["reason"] == "Conflict", refused
        status, refused = b.request("POST", cm, configmap(ns, "cm-1", "again"))
        assert status == 409 and refused["reason"] == "AlreadyExists", refused
        status, gone = b.request("DELETE", f"{cm}/cm-1")
        assert status == 200
        status, missing = a.request("GET", f"{cm}/cm-1")
        assert status == 404, missing
        deleted_rv = gone["metadata"].get("resourceVersion")
        # Every watcher, whichever process serves it, sees the writes in the order they happened.
        for pid, resp in watches:
            seen = [next_event(resp) for _ in range(len(writes) + 1)]
            got_events = [(e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"])
                          for e in seen]
            assert got_events[:-1] == writes, f"process {pid}"
            assert got_events[-1][:2] == ("DELETED", "cm-1"), f"process {pid}"
            if deleted_rv:
                assert int(got_events[-1][2]) > int(writes[-1][2])
            resp.close()
    finally:
        a.request("DELETE", f"/api/v1/namespaces/{ns}")
        for cs in conns.values():
            for c in cs:
                c.close()


def test_kubectl_works_against_workers(server: Server, tmp_path: Path) -> None:
    kubectl = Kubectl(server.kubeconfig, str(tmp_path))
    ns = "workers-kubectl"
    assert kubectl("create", "namespace", ns).returncode == 0
    try:
        for i in range(4):  # each kubectl run opens new connections
            done = kubectl("-n", ns, "create", "configmap", f"k{i}", f"--from-literal=i={i}")
            assert done.returncode == 0, done.stderr
            got = kubectl("-n", ns, "get", "configmap", f"k{i}", "-o", "jsonpath={.data.i}")
            assert got.stdout == str(i), got.stderr
        names = kubectl("-n", ns, "get", "configmaps", "-o", "name").stdout.split()
        assert {f"configmap/k{i}" for i in range(4)} <= set(names)
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")


def _lists_of(resource: str, text: str) -> float:
    """apiserver_request_total for LISTs of ``resource`` answered 200, from Prometheus text."""
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if (s.name == "apiserver_request_total" and s.labels.get("resource") == resource
                    and s.labels.get("verb") == "LIST" and s.labels.get("code") == "200"):
                total += s.value
    return total


def test_metrics_count_every_processs_requests_whichever_answers(server: Server) -> None:
    conns = by_process(server)
    (a, *_), (b, *_) = conns.values()

    def settled(want: float | None, within: float = 15) -> float:
        """The count once both processes' scrapes agree on it (and it is ``want``, if given)."""
        deadline = time.monotonic() + within
        seen: list[float] = []
        while time.monotonic() < deadline:
            seen = [_lists_of("runtimeclasses", conn.text("/metrics")[1]) for conn in (a, b)]
            if seen[0] == seen[1] and (want is None or seen[0] == want):
                return seen[0]
            time.sleep(0.5)
        raise AssertionError(f"scrapes of the two processes said {seen}, want {want}")

    before = settled(None)
    for conn, n in ((a, 3), (b, 4)):  # requests served by each process
        for _ in range(n):
            assert conn.request("GET", "/apis/node.k8s.io/v1/runtimeclasses")[0] == 200
    # Every scrape, whichever process takes it, counts all seven (the other's within its push interval).
    settled(before + 7)
    status, text = a.text("/metrics")
    assert status == 200
    assert text.count("# TYPE apiserver_request_total counter") == 1  # one family, summed, not repeated


def test_a_dead_worker_is_replaced_and_stop_leaves_no_process(tmp_path: Path) -> None:
    with api_server(tmp_path, 2) as s:
        (worker,) = children(s.proc.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = children(s.proc.pid)
            if now and now[0] != worker and is_worker(now[0]):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("no new API worker after one was killed")
        (replacement,) = children(s.proc.pid)
        conns = by_process(s)  # the new worker serves
        assert replacement in conns
        for cs in conns.values():
            for c in cs:
                c.close()
        assert s.stop() == 0
        assert s.proc.stderr is not None
        err = s.proc.stderr.read()
        assert f"API worker 1 (pid {worker}) exited with code -9; starting another" in err, err
        for pid in (worker, replacement):
            assert not is_worker(pid), f"worker {pid} outlived the server"


def test_bad_worker_count_is_one_line(tmp_path: Path) -> None:
    p = subprocess.run([BOSUN, "server", "--data-dir", str(tmp_path), "--api-workers", "0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "--api-workers" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_workers_exit_when_the_server_is_killed(tmp_path: Path) -> None:
    with api_server(tmp_path, 2) as s:
        (worker,) = children(s.proc.pid)
        s.proc.kill()
        s.proc.wait()
        deadline = time.monotonic() + 30
        while is_worker(worker):
            assert time.monotonic() < deadline, f"worker {worker} outlived its killed server"
            time.sleep(0.1)
