"""API Priority and Fairness on `bosun server` through real kubectl (v1.32): a priority level of one
seat refuses a matched user's second concurrent request with 429 (Retry-After, a Status, the
X-Kubernetes-PF-* headers) while other users pass; a Queue level makes it wait, then serves
it; system:masters is exempt whatever else matches; the apiserver_flowcontrol_* metrics count
it all.

A seat is held by a real slow client: a POST whose body is only half sent (the handler waits
for the rest, as kube-apiserver's would), released by sending the rest.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.api_workers_env import Server, api_server, holder, socket_inode
from tests.e2e.helpers import BOSUN, Kubectl, wait_until

from bosun.api.registry import must_by_plural
from bosun.client.rest import Client
from bosun.security.tokens import create_user_token

V1 = "flowcontrol.apiserver.k8s.io/v1"
CONFIGMAPS = must_by_plural("", "v1", "configmaps")
EVERYTHING = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"],
                                 "clusterScope": True}],
              "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}


def _level(name: str, response: dict[str, Any], shares: int = 1, lendable: int = 0,
           borrowing: int | None = 0) -> dict[str, Any]:
    """A level of ``shares``; by default it neither lends nor borrows, so that its seats are
    its nominal ones (unset, ``borrowingLimitPercent`` lets a level borrow without limit)."""
    limited: dict[str, Any] = {"nominalConcurrencyShares": shares, "lendablePercent": lendable,
                               "limitResponse": response}
    if borrowing is not None:
        limited["borrowingLimitPercent"] = borrowing
    return {"apiVersion": V1, "kind": "PriorityLevelConfiguration", "metadata": {"name": name},
            "spec": {"type": "Limited", "limited": limited}}


def _schema(name: str, level: str, user: str, precedence: int = 500) -> dict[str, Any]:
    return {"apiVersion": V1, "kind": "FlowSchema", "metadata": {"name": name},
            "spec": {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence,
                     "distinguisherMethod": {"type": "ByUser"},
                     "rules": [{"subjects": [{"kind": "User", "user": {"name": user}}], **EVERYTHING}]}}


class Cluster:
    def __init__(self, server: Server, kubectl: Kubectl, tokens: dict[str, str]) -> None:
        self.server = server
        self.kubectl = kubectl
        self.tokens = tokens

    def as_user(self, user: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.kubectl.argv("--token", self.tokens[user], *args), env=self.kubectl.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def metrics(self) -> str:
        conn = self.server.connect()
        try:
            status, text = conn.text("/metrics")
        finally:
            conn.close()
        assert status == 200
        return text

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s series whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
            if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
                total += float(m.group(2))
        return total

    def uid(self, what: str) -> str:
        r = self.kubectl("get", what, "-o", "json")
        assert r.returncode == 0, r.stderr
        return str(json.loads(r.stdout)["metadata"]["uid"])

    def raw(self, user: str, method: str, path: str, body: bytes = b"", send: int | None = None) -> ssl.SSLSocket:
        """A request as ``user`` on a new connection, of which only ``send`` body bytes go out."""
        sock = self.server.ssl.wrap_socket(socket.create_connection(("127.0.0.1", self.server.port), timeout=30),
                                           server_hostname="127.0.0.1")
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.tokens[user]}\r\n"
                f"Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        sock.sendall(head.encode() + body[:send])
        return sock


def read_response(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], dict[str, Any]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(lines[0].split()[1]), headers, json.loads(body) if body else {}


class Held:
    """A seat held by a create whose body is half sent."""

    def __init__(self, cluster: Cluster, user: str, name: str) -> None:
        self.body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).encode()
        self.sock = cluster.raw(user, "POST", "/api/v1/namespaces/default/configmaps", self.body, send=10)
        self.released = False

    def release(self) -> int:
        self.released = True
        self.sock.sendall(self.body[10:])
        status, _, _ = read_response(self.sock)
        self.sock.close()
        return status


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One API process with a concurrency limit of 6: a level of 1 share gets 1 seat."""
    tmp = tmp_path_factory.mktemp("apf-dispatch")
    with api_server(tmp, 1, "--max-requests-inflight", "4", "--max-mutating-requests-inflight", "2") as server:
        kubectl = Kubectl(server.kubeconfig, str(tmp))
        tokens = {u: create_user_token(tmp, u) for u in ("alice", "bob", "carol")}
        docs = [_level("apf-one", {"type": "Reject"}),
                _level("apf-queue", {"type": "Queue", "queuing": {"queues": 4, "handSize": 2, "queueLengthLimit": 5}}),
                _schema("apf-alice", "apf-one", "alice"), _schema("apf-carol", "apf-queue", "carol"),
                # Matches the admin too, after the mandatory exempt schema (precedence 1).
                _schema("apf-admin-too", "apf-one", "bosun-admin", precedence=2)]
        made = kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        assert made.returncode == 0, made.stderr
        bound = kubectl("create", "clusterrolebinding", "apf-edit", "--clusterrole=edit", "--user=alice",
                        "--user=bob", "--user=carol")
        assert bound.returncode == 0, bound.stderr
        c = Cluster(server, kubectl, tokens)
        wait_until(lambda: c.metric("apiserver_flowcontrol_nominal_limit_seats", priority_level="apf-queue") == 1,
                   within=20, what="the new priority levels in the dispatcher")
        yield c


def test_a_one_seat_reject_level_refuses_the_users_second_request(cluster: Cluster) -> None:
    held = Held(cluster, "alice", "held-by-alice")
    try:
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_executing_requests",
                                          flow_schema="apf-alice") == 1, within=20, what="alice's seat taken")
        before = cluster.metric("apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-alice",
                                reason="concurrency-limit")
        # The wire answer: 429, Retry-After, a Status, and which schema and level refused it.
        sock = cluster.raw("alice", "GET", "/api/v1/namespaces/default/configmaps")
        status, headers, body = read_response(sock)
        sock.close()
        assert status == 429, body
        assert headers["retry-after"] == "1"
        assert body["kind"] == "Status" and body["reason"] == "TooManyRequests" and body["code"] == 429
        assert body["details"]["retryAfterSeconds"] == 1
        assert headers["x-kubernetes-pf-flowschema-uid"] == cluster.uid("flowschema/apf-alice")
        assert headers["x-kubernetes-pf-prioritylevel-uid"] == cluster.uid("prioritylevelconfiguration/apf-one")
        # kubectl as alice is refused (client-go retries after Retry-After) while bob is served.
        alice = cluster.as_user("alice", "get", "configmaps", "-n", "default", "-v=6")
        bob = cluster.as_user("bob", "get", "configmaps", "-n", "default")
        _, err = bob.communicate(timeout=30)
        assert bob.returncode == 0, err
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-alice",
                                          reason="concurrency-limit") >= before + 2,
                   within=20, what="kubectl as alice refused")
        assert alice.poll() is None, "kubectl gave up or was served while the seat was held"
    except BaseException:
        for proc in ("alice", "bob"):
            started = locals().get(proc)
            if isinstance(started, subprocess.Popen) and started.poll() is None:
                started.kill()
                started.wait()
        raise
    finally:
        assert held.release() == 201
    _, err = alice.communicate(timeout=30)
    assert alice.returncode == 0, err  # its retry after the seat came free was served
    assert "429 Too Many Requests" in err, err


def test_a_queue_level_makes_the_request_wait_then_serves_it(cluster: Cluster) -> None:
    held = Held(cluster, "carol", "held-by-carol")
    try:
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_executing_requests",
                                          flow_schema="apf-carol") == 1, within=20, what="carol's seat taken")
        carol = cluster.as_user("carol", "get", "configmaps", "-n", "default", "-v=6")
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_inqueue_requests",
                                          flow_schema="apf-carol") == 1, within=20, what="kubectl as carol queued")
        time.sleep(0.5)
        assert carol.poll() is None, "served while the only seat was held"
    except BaseException:
        started = locals().get("carol")
        if isinstance(started, subprocess.Popen) and started.poll() is None:
            started.kill()
            started.wait()
        raise
    finally:
        assert held.release() == 201
    _, err = carol.communicate(timeout=30)
    assert carol.returncode == 0, err
    assert "Too Many Requests" not in err and "200 OK" in err, err
    assert cluster.metric("apiserver_flowcontrol_current_inqueue_requests", flow_schema="apf-carol") == 0
    waited = cluster.metric("apiserver_flowcontrol_request_wait_duration_seconds_sum", flow_schema="apf-carol",
                            execute="true")
    assert waited >= 0.5
    assert cluster.metric("apiserver_flowcontrol_dispatched_requests_total", flow_schema="apf-carol") >= 2
    assert cluster.metric("apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-carol") == 0


def test_system_masters_are_exempt(cluster: Cluster) -> None:
    """The admin also matches apf-admin-too (apf-one's one seat, Reject), but the mandatory
    exempt schema comes first: with alice holding that seat, ten concurrent kubectls pass."""
    held = Held(cluster, "alice", "held-again")
    try:
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_executing_requests",
                                          flow_schema="apf-alice") == 1, within=20, what="alice's seat taken")
        procs = [subprocess.Popen(cluster.kubectl.argv("get", "configmaps", "-n", "default", "-v=6"),
                                  env=cluster.kubectl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(10)]
        for p in procs:
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0 and "Too Many Requests" not in err, err
        r = cluster.kubectl("get", "--raw", "/api/v1/namespaces/default", "-v=8")
        assert r.returncode == 0, r.stderr
        assert f"X-Kubernetes-Pf-Flowschema-Uid: {cluster.uid('flowschema/exempt')}" in r.stderr
        assert f"X-Kubernetes-Pf-Prioritylevel-Uid: {cluster.uid('prioritylevelconfiguration/exempt')}" in r.stderr
    finally:
        assert held.release() == 201
    assert cluster.metric("apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-admin-too") == 0
    assert cluster.metric("apiserver_flowcontrol_dispatched_requests_total", flow_schema="exempt") >= 10


def test_suggested_objects_and_seats_from_the_flags(cluster: Cluster) -> None:
    r = cluster.kubectl("get", "prioritylevelconfigurations", "-o", "json")
    assert r.returncode == 0, r.stderr
    levels = {o["metadata"]["name"]: o["spec"] for o in json.loads(r.stdout)["items"]}
    assert {"system", "node-high", "leader-election", "workload-high", "workload-low", "global-default"} <= set(levels)
    assert levels["workload-low"]["limited"]["nominalConcurrencyShares"] == 100
    shares = sum(int((s.get("limited") or s.get("exempt") or {}).get("nominalConcurrencyShares", 0))
                 for s in levels.values())
    # ceil(6 * 100 / shares): the limit is --max-requests-inflight + --max-mutating-requests-inflight.
    want = -(-6 * 100 // shares)
    assert cluster.metric("apiserver_flowcontrol_nominal_limit_seats", priority_level="workload-low") == want
    r = cluster.kubectl("get", "flowschemas", "-o", "json")
    schemas = {o["metadata"]["name"]: o["spec"] for o in json.loads(r.stdout)["items"]}
    assert schemas["global-default"]["matchingPrecedence"] == 9900
    assert schemas["probes"]["priorityLevelConfiguration"]["name"] == "exempt"
    assert schemas["kube-system-service-accounts"]["distinguisherMethod"] == {"type": "ByNamespace"}


def test_a_zero_concurrency_limit_is_refused(tmp_path: Path) -> None:
    r = subprocess.run([BOSUN, "server", "--data-dir", str(tmp_path), "--max-requests-inflight", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Invalid value for '--max-requests-inflight'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def _pid_of(server: Server, sock: ssl.SSLSocket) -> int | None:
    inode = socket_inode(server.port, sock.getsockname()[1])
    return None if inode is None else holder(server.pids(), inode)


def test_each_api_process_limits_its_own_part(tmp_path: Path) -> None:
    """--api-workers 2 with a limit of 6: each process has 3 seats to share out, so the 1-share
    level has one seat in each. Alice holding the seat of one process is refused there and
    served by the other."""
    with api_server(tmp_path, 2, "--max-requests-inflight", "4", "--max-mutating-requests-inflight", "2") as server:
        kubectl = Kubectl(server.kubeconfig, str(tmp_path))
        c = Cluster(server, kubectl, {"alice": create_user_token(tmp_path, "alice")})
        made = kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([_level("apf-one", {"type": "Reject"}),
                                                                     _schema("apf-alice", "apf-one", "alice")]))
        assert made.returncode == 0, made.stderr
        bound = kubectl("create", "clusterrolebinding", "apf-edit", "--clusterrole=edit", "--user=alice")
        assert bound.returncode == 0, bound.stderr
        # /metrics sums the processes' series: one seat each.
        wait_until(lambda: c.metric("apiserver_flowcontrol_nominal_limit_seats", priority_level="apf-one") == 2,
                   within=30, what="apf-one in both processes' dispatchers")
        held = Held(c, "alice", "held")
        try:
            wait_until(lambda: c.metric("apiserver_flowcontrol_current_executing_requests",
                                        flow_schema="apf-alice") == 1, within=20, what="alice's seat taken")
            holding = _pid_of(server, held.sock)
            assert holding is not None
            seen: dict[bool, int] = {}
            for _ in range(200):
                sock = c.raw("alice", "GET", "/api/v1/namespaces/default/configmaps")
                try:
                    status, _, _ = read_response(sock)
                    pid = _pid_of(server, sock)
                finally:
                    sock.close()
                assert pid is not None
                seen[pid == holding] = status
                if len(seen) == 2:
                    break
            assert seen == {True: 429, False: 200}, seen
        finally:
            assert held.release() == 201


def test_bosuns_client_waits_retry_after_and_sends_again(cluster: Cluster) -> None:
    """As client-go: a 429 with Retry-After is retried (the request was refused before anything
    was done), so a component refused while a level is full is served once it has room."""
    held = Held(cluster, "alice", "held-for-client")
    before = cluster.metric("apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-alice")

    async def scenario() -> dict[str, Any]:
        client = Client.from_kubeconfig(cluster.server.kubeconfig)
        client.set_token(cluster.tokens["alice"])
        try:
            listing = asyncio.create_task(client.list(CONFIGMAPS, "default"))
            await asyncio.to_thread(wait_until, lambda: cluster.metric(
                "apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-alice") > before,
                20, "the client refused")
            assert not listing.done()
            assert await asyncio.to_thread(held.release) == 201
            return await asyncio.wait_for(listing, 30)
        finally:
            await client.close()

    try:
        got = asyncio.run(scenario())
    finally:
        if not held.released:
            held.release()
    assert any(o["metadata"]["name"] == "held-for-client" for o in got["items"])
