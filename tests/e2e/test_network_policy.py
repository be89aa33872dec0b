"""NetworkPolicy on a real multi-node cluster: a policy selecting a pod makes it default-deny,
its rules let chosen peers through (same node: bridged; other node: through the overlay),
established connections and cluster DNS keep working, and deleting the policy opens it again."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from tests.harness import NetCluster
from tests.harness.fixtures import requires_netns
from tests.harness.pods import pod, run_pods

pytestmark = requires_netns

SERVE = ["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"]


def reaches(cluster: NetCluster, ns: str, client: str, ip: str, port: int = 8080) -> bool:
    """An HTTP GET from pod ``client`` to ``ip:port``, 2 s at most."""
    res = cluster.kubectl("exec", "-i", "-n", ns, client, "--", "busybox", "nc", "-w", "2", ip, str(port),
                          input="GET / HTTP/1.0\r\n\r\n", timeout=20)
    return " 200 " in res.stdout


def settle(check: object, want: bool, within: float = 10.0) -> bool:
    """Policy changes reach the kernel asynchronously: poll until ``check()`` is ``want``."""
    deadline = time.monotonic() + within
    while True:
        got = check()  # type: ignore[operator]
        if got == want or time.monotonic() > deadline:
            return bool(got)
        time.sleep(0.3)


def apply(cluster: NetCluster, obj: dict[str, object]) -> None:
    res = cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))
    assert res.returncode == 0, res.stderr


@pytest.fixture
def ns(netcluster: NetCluster) -> Iterator[str]:
    name = f"np-{uuid.uuid4().hex[:6]}"
    assert netcluster.kubectl("create", "namespace", name).returncode == 0
    try:
        yield name
    finally:
        netcluster.kubectl("delete", "namespace", name, "--wait=false")


def test_policy_denies_by_default_and_allows_named_peers(netcluster: NetCluster, ns: str) -> None:
    n1, n2 = netcluster.nodes[0].name, netcluster.nodes[1].name
    pods = run_pods(netcluster, [
        pod("db", n1, SERVE, namespace=ns, labels={"app": "db"}),
        pod("api", n2, ["sleep", "3600"], namespace=ns, labels={"app": "api"}),      # other node
        pod("other", n1, ["sleep", "3600"], namespace=ns, labels={"app": "other"}),  # same node
    ])
    db = pods["db"]["status"]["podIP"]
    assert settle(lambda: reaches(netcluster, ns, "api", db), True)
    assert reaches(netcluster, ns, "other", db)

    apply(netcluster, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "db-from-api", "namespace": ns},
                       "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                                             "ports": [{"port": 8080}]}]}})
    assert not settle(lambda: reaches(netcluster, ns, "other", db), False), "same-node peer still reaches db"
    assert reaches(netcluster, ns, "api", db), "the allowed peer on another node is refused"

    # egress default-deny for api, except to db: db still answers, the other pod does not,
    # and cluster DNS (served by the node itself) keeps answering
    apply(netcluster, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "api-out", "namespace": ns},
                       "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"],
                                "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]}})
    other_ip = pods["other"]["status"]["podIP"]
    run_pods(netcluster, [pod("web", n1, SERVE, namespace=ns, labels={"app": "web"})])
    web = netcluster.kubectl_json("get", "pod", "-n", ns, "web")["status"]["podIP"]
    assert not settle(lambda: reaches(netcluster, ns, "api", web), False), "egress not isolated"
    assert reaches(netcluster, ns, "api", db)
    assert not reaches(netcluster, ns, "api", other_ip)
    lookup = netcluster.kubectl("exec", "-n", ns, "api", "--", "busybox", "nslookup",
                                "kubernetes.default.svc.cluster.local", timeout=20)
    assert lookup.returncode == 0, lookup.stdout + lookup.stderr

    # the policies go: everything flows again
    assert netcluster.kubectl("delete", "networkpolicy", "-n", ns, "--all").returncode == 0
    assert settle(lambda: reaches(netcluster, ns, "other", db), True)
    assert reaches(netcluster, ns, "api", web)


def test_namespace_selector_and_ip_block(netcluster: NetCluster, ns: str) -> None:
    n1, n3 = netcluster.nodes[0].name, netcluster.nodes[2].name
    friend = f"{ns}-friend"
    assert netcluster.kubectl("create", "namespace", friend).returncode == 0
    try:
        assert netcluster.kubectl("label", "namespace", friend, "team=friends").returncode == 0
        pods = run_pods(netcluster, [pod("db", n1, SERVE, namespace=ns, labels={"app": "db"}),
                                     pod("local", n3, ["sleep", "3600"], namespace=ns)])
        guest = run_pods(netcluster, [pod("guest", n3, ["sleep", "3600"], namespace=friend)])["guest"]
        db = pods["db"]["status"]["podIP"]
        apply(netcluster, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                           "metadata": {"name": "friends", "namespace": ns},
                           "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "friends"}}}]},
                                                {"from": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                                       "except": [guest["status"]["podIP"] + "/32"]}}],
                                                 "ports": [{"port": 9999}]}]}})
        assert settle(lambda: reaches(netcluster, friend, "guest", db), True), "namespaceSelector peer refused"
        assert not settle(lambda: reaches(netcluster, ns, "local", db), False), \
            "a pod of db's own namespace is not selected by the namespaceSelector"
    finally:
        netcluster.kubectl("delete", "namespace", friend, "--wait=false")
