"""API Priority and Fairness' seats on `bosun server` through real kubectl (v1.32) and raw
HTTPS: a list takes a seat per 100 objects, so with one seat held a level of two refuses the
list but serves a get; a watch holds its seat while its initial events are sent (a client
that does not read them keeps it), and gives it back while it goes on; a level borrows the
seats others lend, up to its borrowingLimitPercent; the /debug/api_priority_and_fairness
dumps show levels, queues and who waits.

Seats are held by real slow clients, as in test_flowcontrol_dispatch.py: a POST whose body
is half sent, or a watch whose events are not read.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.e2e.api_workers_env import api_server
from tests.e2e.helpers import Kubectl, wait_until
from tests.e2e.test_flowcontrol_dispatch import Cluster, Held, _level, _schema, read_response

from bosun.security.tokens import create_user_token

QUEUE = {"type": "Queue", "queuing": {"queues": 4, "handSize": 2, "queueLengthLimit": 10}}
USERS = ("dave", "erin", "frank", "gina", "hank")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One API process with a concurrency limit of 6; apf-wide's 80 shares make 2 seats of it."""
    tmp = tmp_path_factory.mktemp("apf-seats")
    with api_server(tmp, 1, "--max-requests-inflight", "4", "--max-mutating-requests-inflight", "2") as server:
        kubectl = Kubectl(server.kubeconfig, str(tmp))
        tokens = {u: create_user_token(tmp, u) for u in USERS}
        docs = [_level("apf-wide", {"type": "Reject"}, shares=80),
                _level("apf-borrower", QUEUE, borrowing=200),
                _level("apf-watch", {"type": "Reject"}),
                _level("apf-dump", QUEUE),
                _level("apf-narrow", QUEUE),
                _schema("apf-dave", "apf-wide", "dave"), _schema("apf-erin", "apf-borrower", "erin"),
                _schema("apf-frank", "apf-watch", "frank"), _schema("apf-gina", "apf-dump", "gina"),
                _schema("apf-hank", "apf-narrow", "hank"),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "wide"}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "watched"}}]
        made = kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
        assert made.returncode == 0, made.stderr
        bound = kubectl("create", "clusterrolebinding", "apf-edit", "--clusterrole=edit",
                        *(f"--user={u}" for u in USERS))
        assert bound.returncode == 0, bound.stderr
        c = Cluster(server, kubectl, tokens)
        wait_until(lambda: c.metric("apiserver_flowcontrol_nominal_limit_seats", priority_level="apf-wide") == 2,
                   within=20, what="the new priority levels in the dispatcher")
        yield c


def _status(c: Cluster, user: str, path: str) -> int:
    sock = c.raw(user, "GET", path)
    try:
        return read_response(sock)[0]
    finally:
        sock.close()


def _configmaps(c: Cluster) -> int:
    r = c.kubectl("get", "configmaps", "-A", "-o", "json")
    assert r.returncode == 0, r.stderr
    return len(json.loads(r.stdout)["items"])


def test_a_list_takes_a_seat_per_hundred_objects(cluster: Cluster) -> None:
    """apf-wide has 2 seats (neither lent nor borrowed). With one held, a list of configmaps
    passes while there are fewer than 101 of them (1 seat), and is refused once there are
    150 (2 seats: 1 + 2 > 2), while a get (1 seat) still passes; freed, the list is served."""
    lst, one = "/api/v1/namespaces/wide/configmaps", "/api/v1/namespaces/wide/configmaps/cm-0"
    assert _configmaps(cluster) < 100
    held = Held(cluster, "dave", "held-by-dave")
    more = 0
    try:
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_executing_seats",
                                          flow_schema="apf-dave") == 1, within=20, what="dave's seat taken")
        assert _status(cluster, "dave", lst) == 200
        more = 150 - _configmaps(cluster)
        items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": "wide"}}
                 for i in range(more)]
        made = cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                    "items": items}))
        assert made.returncode == 0, made.stderr
        assert _configmaps(cluster) == 150
        before = cluster.metric("apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-dave")
        assert _status(cluster, "dave", lst) == 429
        assert _status(cluster, "dave", one) == 200
        assert cluster.metric("apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-dave") == before + 1
    finally:
        assert held.release() == 201
    r = cluster.as_user("dave", "get", "configmaps", "-n", "wide", "-o", "name")
    out, err = r.communicate(timeout=30)
    assert r.returncode == 0, err
    assert {"configmap/cm-0", f"configmap/cm-{more - 1}"} <= set(out.split())


def test_a_watch_holds_its_seat_while_its_initial_events_are_sent(cluster: Cluster) -> None:
    """apf-watch has 1 seat. Frank's watch of 24 configmaps of 500 KB, read by nobody, cannot
    send its initial events (the socket is full): its seat stays taken and frank's get is
    refused. Once the events are read the seat comes free while the watch goes on."""
    blob = "x" * 500_000
    items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"big-{i}", "namespace": "watched"},
              "data": {"blob": blob}} for i in range(24)]
    made = cluster.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert made.returncode == 0, made.stderr
    get = "/api/v1/namespaces/default/configmaps/none"
    assert _status(cluster, "frank", get) == 404  # served: the seat is free
    # A small receive buffer, set before connecting, keeps the window small: the server's writes block.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", cluster.server.port))
    watch = cluster.server.ssl.wrap_socket(raw, server_hostname="127.0.0.1")
    watch.sendall(f"GET /api/v1/namespaces/watched/configmaps?watch=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {cluster.tokens['frank']}\r\n\r\n".encode())
    try:
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_executing_requests",
                                          flow_schema="apf-frank") == 1, within=20, what="the watch admitted")
        time.sleep(1.0)
        assert cluster.metric("apiserver_flowcontrol_current_executing_requests", flow_schema="apf-frank") == 1
        assert _status(cluster, "frank", get) == 429
        seen = b""
        while seen.count(b'"type":"ADDED"') < 24:
            chunk = watch.recv(1 << 20)
            assert chunk, "the watch ended"
            seen += chunk
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_executing_requests",
                                          flow_schema="apf-frank") == 0, within=20, what="the watch's seat freed")
        assert _status(cluster, "frank", get) == 404
        # The watch goes on: a new configmap is its next event.
        made = cluster.kubectl("create", "configmap", "after", "-n", "watched")
        assert made.returncode == 0, made.stderr
        watch.settimeout(20)
        tail = b""
        while b'"name":"after"' not in tail:
            chunk = watch.recv(1 << 16)
            assert chunk, "the watch ended"
            tail += chunk
    finally:
        watch.close()
        cluster.kubectl("delete", "configmaps", "--all", "-n", "watched", "--wait=false")


def test_a_level_borrows_what_others_lend(cluster: Cluster) -> None:
    """apf-borrower has 1 nominal seat, lends none and may borrow 200% of it: 3 seats at most.
    With two of erin's requests holding seats, her kubectl is still served (the suggested
    levels lend theirs), and the current limit the metrics report reaches 3 and no more."""
    def seats(name: str) -> float:
        return cluster.metric(name, priority_level="apf-borrower")

    assert (seats("apiserver_flowcontrol_nominal_limit_seats"), seats("apiserver_flowcontrol_lower_limit_seats"),
            seats("apiserver_flowcontrol_upper_limit_seats")) == (1, 1, 3)
    assert cluster.metric("apiserver_flowcontrol_lower_limit_seats", priority_level="workload-low") == 0  # lends 90%
    held = [Held(cluster, "erin", f"held-by-erin-{i}") for i in range(2)]
    kubectl: subprocess.Popen[str] | None = None
    try:
        # Waited for (queued) or running, both count as demand; the limit follows it.
        wait_until(lambda: seats("apiserver_flowcontrol_current_limit_seats") >= 2, within=40,
                   what="apf-borrower borrowing a second seat")
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_executing_requests",
                                          flow_schema="apf-erin") == 2, within=20, what="both of erin's held")
        kubectl = cluster.as_user("erin", "get", "--raw", "/api", "-v=6")
        _, err = kubectl.communicate(timeout=90)
        assert kubectl.returncode == 0, err
        wait_until(lambda: seats("apiserver_flowcontrol_current_limit_seats") == 3, within=40,
                   what="apf-borrower at its upper bound")
        assert seats("apiserver_flowcontrol_demand_seats_high_watermark") >= 2
        assert cluster.metric("apiserver_flowcontrol_current_executing_requests", flow_schema="apf-erin") == 2
        time.sleep(11)  # another adjustment: never past the upper bound
        assert seats("apiserver_flowcontrol_current_limit_seats") == 3
    finally:
        if kubectl is not None and kubectl.poll() is None:
            kubectl.kill()
            kubectl.wait()
        for h in held:
            assert h.release() == 201
    assert cluster.metric("apiserver_flowcontrol_rejected_requests_total", flow_schema="apf-erin") == 0


def _create_then_get(c: Cluster, name: str) -> None:
    """Hank's create and his get, pipelined on one connection: the server reads the get the
    moment it has answered the create."""
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).encode()
    auth = f"Host: 127.0.0.1\r\nAuthorization: Bearer {c.tokens['hank']}\r\nAccept: application/json\r\n"
    sock = c.server.ssl.wrap_socket(socket.create_connection(("127.0.0.1", c.server.port), timeout=30),
                                    server_hostname="127.0.0.1")
    try:
        sock.sendall(f"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\n{auth}Content-Type: application/json"
                     f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body +
                     f"GET /api/v1/namespaces/default/configmaps/{name} HTTP/1.1\r\n{auth}\r\n".encode())
        replies = sock.makefile("rb")
        for want in (201, 200):
            status = int(replies.readline().split()[1])
            length = 0
            while (line := replies.readline().strip()):
                key, _, value = line.decode().partition(":")
                if key.lower() == "content-length":
                    length = int(value)
            replies.read(length)
            assert status == want
    finally:
        sock.close()


def test_a_write_many_watches_follow_keeps_its_seat_a_moment_after_it_ends(cluster: Cluster) -> None:
    """apf-narrow has 1 seat, so its widest request is 1 seat. Followed by 200 watches, a
    configmap create costs 20 seats for 5 ms, reshaped to 1 seat for 100 ms after it ends:
    hank's get sent the moment his create is answered waits for it in the queue. With no
    watches it does not wait at all."""
    def waited() -> float:
        return cluster.metric("apiserver_flowcontrol_request_wait_duration_seconds_sum", flow_schema="apf-hank",
                              execute="true")

    before = waited()
    _create_then_get(cluster, "hank-alone")
    assert waited() == before
    watches = []
    try:
        for _ in range(200):
            w = cluster.server.connect()
            watches.append(w)
            w.watch("/api/v1/namespaces/watchers/configmaps?watch=1")
        _create_then_get(cluster, "hank-watched")
        assert waited() - before >= 0.05
    finally:
        for w in watches:
            w.conn.close()
    cluster.kubectl("delete", "configmap", "hank-alone", "hank-watched", "-n", "default")


def _table(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split(",")] for line in text.splitlines()]


def test_the_debug_dumps_show_levels_queues_and_waiting_requests(cluster: Cluster) -> None:
    """apf-dump has 1 seat and queues: with gina's create holding it and her get waiting,
    kubectl get --raw shows the waiting request, its queue and the level's counts."""
    held = Held(cluster, "gina", "held-by-gina")
    waiting: Any = None
    try:
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_executing_requests",
                                          flow_schema="apf-gina") == 1, within=20, what="gina's seat taken")
        waiting = cluster.raw("gina", "GET", "/api/v1/namespaces/default/configmaps/held-by-gina")
        wait_until(lambda: cluster.metric("apiserver_flowcontrol_current_inqueue_requests",
                                          flow_schema="apf-gina") == 1, within=20, what="gina's get queued")

        def dump(what: str) -> list[list[str]]:
            r = cluster.kubectl("get", "--raw", f"/debug/api_priority_and_fairness/{what}")
            assert r.returncode == 0, r.stderr
            return _table(r.stdout)

        levels = dump("dump_priority_levels")
        assert levels[0] == ["PriorityLevelName", "ActiveQueues", "IsIdle", "IsQuiescing", "WaitingRequests",
                             "ExecutingRequests", "DispatchedRequests", "RejectedRequests", "TimedoutRequests",
                             "CancelledRequests"]
        row = next(r for r in levels if r[0] == "apf-dump")
        assert row[1:6] == ["1", "false", "false", "1", "1"], row
        assert [r[0] for r in levels[1:]] == sorted(r[0] for r in levels[1:])
        assert next(r for r in levels if r[0] == "exempt")[1] == "<none>"
        queues = [r for r in dump("dump_queues") if r[0] == "apf-dump"]
        assert len(queues) == 4 and sorted(int(r[2]) for r in queues) == [0, 0, 0, 1]
        requests = dump("dump_requests")
        assert requests[0][:5] == ["PriorityLevelName", "FlowSchemaName", "QueueIndex", "RequestIndexInQueue",
                                   "FlowDistingsher"]
        mine = [r for r in requests if r[0] == "apf-dump"]
        assert len(mine) == 1 and mine[0][1] == "apf-gina" and mine[0][3:5] == ["0", "gina"], mine
        assert mine[0][6:9] == ["1", "0", "0s"]
        detailed = dump("dump_requests?includeRequestDetails=1")
        assert next(r for r in detailed if r[0] == "apf-dump")[-1] == "gina"
    finally:
        assert held.release() == 201
    assert read_response(waiting)[0] == 200
    waiting.close()


def test_the_dumps_are_for_those_allowed_to_read_them(cluster: Cluster) -> None:
    sock = cluster.raw("gina", "GET", "/debug/api_priority_and_fairness/dump_priority_levels")
    status, _, body = read_response(sock)
    sock.close()
    assert status == 403 and body["reason"] == "Forbidden", body
    r = cluster.kubectl("get", "--raw", "/debug/api_priority_and_fairness/dump_nothing")
    assert r.returncode != 0 and "NotFound" in r.stderr, r.stderr

