"""A ResourceQuota holds when creates race through different API processes of
`bosun server --api-workers 2`: the charge is a compare-and-swap in the one store they share,
not a count kept in one process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.api_workers_env import Conn, Server, api_server, namespace_furnished


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with api_server(tmp_path_factory.mktemp("quota-workers"), 2, "--controllers", "resourcequota") as s:
        yield s


def connections(server: Server, per_process: int) -> list[Conn]:
    """``per_process`` connections to each of the two API processes."""
    got: dict[int, list[Conn]] = {}
    for _ in range(400):
        conn = server.connect()
        conn.request("GET", "/api/v1/namespaces/default")
        pid = conn.serving_pid()
        assert pid is not None
        if len(got.setdefault(pid, [])) < per_process:
            got[pid].append(conn)
        else:
            conn.close()
        if len(got) == 2 and all(len(c) == per_process for c in got.values()):
            return [c for conns in got.values() for c in conns]
    raise AssertionError(f"could not reach both processes: {[(p, len(c)) for p, c in got.items()]}")


def test_racing_creates_across_processes_never_exceed_a_quota(server: Server) -> None:
    race(server, "quota-race")


def test_on_etcd_too(etcd_endpoint: str, tmp_path: Path) -> None:
    """On etcd each worker opens etcd itself: the compare-and-swap is etcd's."""
    with api_server(tmp_path, 2, "--store", f"etcd://{etcd_endpoint}", "--controllers", "resourcequota") as s:
        race(s, "quota-race-etcd")


def race(server: Server, ns: str) -> None:
    conns = connections(server, 10)
    try:
        status, _ = conns[0].request("POST", "/api/v1/namespaces",
                                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        assert status == 201
        namespace_furnished(conns[0], ns)  # its kube-root-ca.crt counts against the quota too
        base = f"/api/v1/namespaces/{ns}"
        status, made = conns[0].request("POST", f"{base}/resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "five"},
            "spec": {"hard": {"count/configmaps": "6"}}})
        assert status == 201, made
        deadline = time.monotonic() + 30
        while (conns[0].request("GET", f"{base}/resourcequotas/five")[1].get("status") or {}).get("used") is None:
            assert time.monotonic() < deadline, "the quota got no status"
            time.sleep(0.2)
        # Both processes' watch caches know the quota before the race (as an informer would).
        time.sleep(1)

        def create(i: int) -> tuple[int, Any]:
            return conns[i].request("POST", f"{base}/configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
        with ThreadPoolExecutor(len(conns)) as pool:
            results = list(pool.map(create, range(len(conns))))
        created = [r for r in results if r[0] == 201]
        refused = [r for r in results if r[0] != 201]
        assert len(created) == 5, results
        assert all(code == 403 and "exceeded quota: five" in body["message"] for code, body in refused), refused
        _, listed = conns[1].request("GET", f"{base}/configmaps")
        assert len([c for c in listed["items"] if c["metadata"]["name"].startswith("cm-")]) == 5
        _, quota = conns[1].request("GET", f"{base}/resourcequotas/five")
        assert quota["status"]["used"] == {"count/configmaps": "6"}
    finally:
        conns[0].request("DELETE", f"/api/v1/namespaces/{ns}")
        for c in conns:
            c.close()
