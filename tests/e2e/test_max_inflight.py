"""`bosun server --enable-priority-and-fairness=false`: kube-apiserver's max-in-flight limits
instead, through real kubectl (v1.32) and raw HTTPS. With --max-mutating-requests-inflight 1
and a create holding that seat (its body half sent), another user's create is refused 429
with Retry-After (kubectl retries it and is served once the seat is free), while reads,
watches and system:masters pass.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from tests.e2e.api_workers_env import api_server
from tests.e2e.helpers import Kubectl, wait_until
from tests.e2e.test_flowcontrol_dispatch import Cluster, Held, read_response

from bosun.security.tokens import create_user_token


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("max-inflight")
    with api_server(tmp, 1, "--enable-priority-and-fairness", "false", "--max-requests-inflight", "1",
                    "--max-mutating-requests-inflight", "1") as server:
        kubectl = Kubectl(server.kubeconfig, str(tmp))
        tokens = {u: create_user_token(tmp, u) for u in ("alice", "bob")}
        bound = kubectl("create", "clusterrolebinding", "inflight-edit", "--clusterrole=edit", "--user=alice",
                        "--user=bob")
        assert bound.returncode == 0, bound.stderr
        yield Cluster(server, kubectl, tokens)


def _configmap(name: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).encode()


def test_a_second_mutating_request_is_refused_while_reads_watches_and_masters_pass(cluster: Cluster) -> None:
    held = Held(cluster, "alice", "held-by-alice")
    bob: subprocess.Popen[str] | None = None
    watch = None
    try:
        wait_until(lambda: cluster.metric("apiserver_current_inflight_requests", request_kind="mutating") == 1,
                   within=20, what="alice's create counted")
        sock = cluster.raw("bob", "POST", "/api/v1/namespaces/default/configmaps", _configmap("by-bob"))
        status, headers, body = read_response(sock)
        sock.close()
        assert status == 429, body
        assert headers["retry-after"] == "1"
        assert body["kind"] == "Status" and body["reason"] == "TooManyRequests"
        assert cluster.metric("apiserver_dropped_requests_total", request_kind="mutating") == 1
        # Reads have their own limit; a watch is not counted at all, so a read passes beside it.
        watch = cluster.raw("bob", "GET", "/api/v1/namespaces/default/configmaps?watch=1")
        assert read_response(watch)[0] == 200
        sock = cluster.raw("bob", "GET", "/api/v1/namespaces/default/configmaps")
        assert read_response(sock)[0] == 200
        sock.close()
        # system:masters is served past the limit.
        r = cluster.kubectl("create", "configmap", "by-admin", "-n", "default")
        assert r.returncode == 0, r.stderr
        # kubectl as bob is refused, retries after Retry-After, and is served once the seat is free.
        bob = cluster.as_user("bob", "create", "configmap", "by-bob", "-n", "default", "-v=6")
        wait_until(lambda: cluster.metric("apiserver_dropped_requests_total", request_kind="mutating") >= 2,
                   within=20, what="kubectl as bob refused")
        assert bob.poll() is None, "kubectl gave up or was served while the seat was held"
    except BaseException:
        if bob is not None and bob.poll() is None:
            bob.kill()
            bob.wait()
        raise
    finally:
        if watch is not None:
            watch.close()
        assert held.release() == 201
    _, err = bob.communicate(timeout=30)
    assert bob.returncode == 0, err
    assert "429 Too Many Requests" in err, err
    assert cluster.metric("apiserver_current_inflight_requests", request_kind="mutating") == 0


def test_no_priority_and_fairness_runs(cluster: Cluster) -> None:
    """The objects are still served, but nothing dispatches by them."""
    r = cluster.kubectl("get", "prioritylevelconfigurations", "catch-all")
    assert r.returncode == 0, r.stderr
    assert "apiserver_flowcontrol_dispatched_requests" not in cluster.metrics()
    r = cluster.kubectl("get", "--raw", "/debug/api_priority_and_fairness/dump_priority_levels")
    assert r.returncode != 0 and "NotFound" in r.stderr, r.stderr
