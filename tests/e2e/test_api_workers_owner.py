"""`bosun server --api-workers 2`: what only the store owner keeps, and what a worker learns late.

The metrics history lives in the owner alone: it alone reads the node agents (each scrape is
traced, from /proc, to the process that holds the agent connection), and the history's
answers are the same whichever process a connection lands on. A CRD made through one process
serves its objects through the other at once. A worker that cannot start is one CLI line."""

from __future__ import annotations

import functools
import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.api_workers_env import Conn, Server, api_server, by_process, holder, socket_inode
from tests.e2e.helpers import BOSUN, Kubectl, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with api_server(tmp_path_factory.mktemp("api-workers-owner"), 2, "--metrics-resolution", "1",
                    "--metrics-retention", "120") as s:
        yield s


class FakeAgent:
    """A node agent's Summary API on loopback: each scrape reports its own sequence number as
    the node's CPU (so two scrapers would record different values), and which API process
    made it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.scrapers: list[int | None] = []
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                inode = socket_inode(self.client_address[1], agent.port)  # the scraper's end
                agent.scrapers.append(None if inode is None else holder(server.pids(), inode))
                n = len(agent.scrapers)
                body = json.dumps({"node": {"nodeName": "scraped", "cpu": {"usageNanoCores": n * 1_000_000},
                                            "memory": {"workingSetBytes": 1 << 20}}, "pods": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        pki = server.data_dir / "pki"
        ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


def points(conn: Conn) -> dict[float, float]:
    status, body = conn.request("GET", "/metrics/history?metric=node_cpu_usage_cores&match=node=scraped")
    assert status == 200, body
    if not body["series"]:
        return {}
    (series,) = body["series"]
    return {t: v for t, v in series["points"][:-1]}  # the newest slot may still be filled


def test_the_history_is_the_owners_alone(server: Server) -> None:
    agent = FakeAgent(server)
    conns = by_process(server)
    owner = server.proc.pid
    (worker,) = [pid for pid in conns if pid != owner]
    some = conns[worker][0]
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "scraped"}}
    status, made = some.request("POST", "/api/v1/nodes", node)
    assert status == 201, made
    try:
        made["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}}}
        status, body = some.request("PUT", "/api/v1/nodes/scraped/status", made)
        assert status == 200, body
        wait_until(lambda: len(points(some)) >= 3, 60, "the history holds three rounds of the node")
        # The same points through every process: one history (two would hold different
        # values for a slot, as each scrape reports its own number).
        answers = {pid: points(cs[0]) for pid, cs in conns.items()}
        common = set(answers[owner]) & set(answers[worker])
        assert len(common) >= 2, answers
        assert {t: answers[owner][t] for t in common} == {t: answers[worker][t] for t in common}
        for pid, cs in conns.items():
            c = cs[0]
            status, names = c.request("GET", "/metrics/history")
            assert status == 200 and "node_cpu_usage_cores" in names["metrics"], (pid, names)
            status, q = c.request("GET", "/metrics/query?query=node_cpu_usage_cores")
            assert status == 200 and q["data"]["result"][0]["metric"]["node"] == "scraped", (pid, q)
            status, text = c.text("/federate?match[]=node_cpu_usage_cores")
            assert status == 200 and 'node_cpu_usage_cores{node="scraped"}' in text, (pid, text)
            status, top = c.request("GET", "/apis/metrics.k8s.io/v1beta1/nodes/scraped")
            assert status == 200 and top["kind"] == "NodeMetrics", (pid, top)
            status, custom = c.request("GET", "/apis/custom.metrics.k8s.io/v1beta2")
            assert status == 200 and "pods/node_cpu_usage_cores" in [r["name"] for r in custom["resources"]]
            # The owner's errors come back as they are.
            status, bad = c.request("GET", "/metrics/query?query=rate(")
            assert status == 400 and bad["kind"] == "Status" and "query:" in bad["message"], (pid, bad)
            # One Prometheus exposition for the whole server, whichever process answers: the
            # history's metrics (kept by the owner alone) too.
            status, whole = c.text("/metrics")
            assert status == 200 and "apiserver_request_total" in whole, pid
            assert "bosun_metrics_history_collections_total" in whole, (pid, whole[-2000:])
        # Every scrape of the agent, for the history or for metrics.k8s.io, came from the owner.
        assert agent.scrapers and set(agent.scrapers) == {owner}, agent.scrapers
    finally:
        some.request("DELETE", "/api/v1/nodes/scraped")
        agent.close()
        for cs in conns.values():
            for c in cs:
                c.close()


def crd(i: int) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"gadgets{i}.late.example.com"},
            "spec": {"group": "late.example.com", "scope": "Namespaced",
                     "names": {"plural": f"gadgets{i}", "singular": f"gadget{i}", "kind": f"Gadget{i}"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def established(conn: Conn, name: str) -> bool:
    status, got = conn.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return status == 200 and any(c["type"] == "Established" and c["status"] == "True"
                                 for c in (got.get("status") or {}).get("conditions") or [])


def test_a_new_crd_serves_through_every_process_at_once(server: Server) -> None:
    conns = by_process(server)
    (a, *_), (b, *_) = conns.values()
    made: list[str] = []
    try:
        for i in range(8):
            # Made and Established as seen through one process, used at once through the other.
            one, other = (a, b) if i % 2 == 0 else (b, a)
            status, body = one.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd(i))
            assert status == 201, body
            made.append(body["metadata"]["name"])
            wait_until(functools.partial(established, one, made[-1]), 30, f"{made[-1]} is Established")
            # Half the time the object first (a 404 unless the process catches up), half the
            # time discovery first (what kubectl reads before it writes).
            for step in (("create", "discover") if i % 4 < 2 else ("discover", "create")):
                if step == "create":
                    obj = {"apiVersion": "late.example.com/v1", "kind": f"Gadget{i}", "metadata": {"name": "g"}}
                    status, body = other.request("POST", f"/apis/late.example.com/v1/namespaces/default/gadgets{i}",
                                                 obj)
                    assert status == 201, body
                else:
                    status, found = other.request("GET", "/apis/late.example.com/v1")
                    assert status == 200 and f"gadgets{i}" in [r["name"] for r in found["resources"]], found
    finally:
        for name in made:
            a.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        for cs in conns.values():
            for c in cs:
                c.close()


def test_kubectl_applies_a_crd_then_its_object(server: Server, tmp_path: Path) -> None:
    """``kubectl apply -f crd.yaml && kubectl apply -f cr.yaml``, each command on connections of
    its own (landing on either process), never fails."""
    kubectl = Kubectl(server.kubeconfig, str(tmp_path))
    names = []
    try:
        for i in range(20, 23):
            definition = crd(i)
            names.append(definition["metadata"]["name"])
            (tmp_path / "crd.json").write_text(json.dumps(definition))
            (tmp_path / "cr.json").write_text(json.dumps({"apiVersion": "late.example.com/v1", "kind": f"Gadget{i}",
                                                          "metadata": {"name": "k", "namespace": "default"}}))
            done = kubectl("apply", "-f", str(tmp_path / "crd.json"))
            assert done.returncode == 0, done.stderr
            done = kubectl("apply", "-f", str(tmp_path / "cr.json"))
            assert done.returncode == 0, done.stderr
    finally:
        for name in names:
            kubectl("delete", "crd", name, "--wait=false")


def test_a_worker_that_cannot_start_is_one_error_line(tmp_path: Path) -> None:
    """An interpreter that dies at start (here a ``sitecustomize`` that exits every ``python -m``
    process: the workers, never the ``bosun`` script): the server stops and says so in one
    ``error:`` line, leaving no process behind."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os, sys\nif sys.argv[:1] == ['-m']:\n    os._exit(3)\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    p = subprocess.run([BOSUN, "server", "--data-dir", str(tmp_path / "data"), "--listen",
                        f"127.0.0.1:{free_port()}", "--api-workers", "2", "--controllers", "none", "--no-scheduler"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 1, (p.stdout, p.stderr)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {errors[0][len('error: '):]}"] and "API worker 1" in errors[0], p.stderr
    assert "did not start: it exited with code 3" in errors[0], p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    # Said once: not again as a worker that "stopped" when the server gives up.
    assert sum("API worker 1" in line for line in p.stderr.splitlines()) == 1, p.stderr
