"""Cluster DNS on the multi-node harness: every node answers its own pods, from its own
caches, for Services and StatefulSet pods wherever they run, and follows changes at once.
(Forwarding to an upstream is covered by tests/integration/test_dns_e2e.py, whose upstream
lives in a namespace of the test: the harness nodes' upstream would be the host's.)"""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any

import pytest
from tests.harness import NetCluster
from tests.harness.fixtures import NetClusterFactory, requires_netns
from tests.harness.pods import pod, run_pods

pytestmark = [requires_netns, pytest.mark.timeout(240)]

NS = "dnsmn"
PROBE = ("for n in web web.dnsmn.svc.cluster.local db-0.db db-1.db kubernetes.default; do "
         "echo \"$n $(getent hosts $n | cut -d' ' -f1)\"; done; "
         "busybox nslookup missing.dnsmn.svc.cluster.local >/dev/null 2>&1; echo \"nx $?\"; "
         "head -1 /etc/resolv.conf; sleep 3600")


def _manifests() -> list[dict[str, Any]]:
    labels = {"app": "db"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": NS},
         "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "pg", "port": 5432}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS},
         "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "terminationGracePeriodSeconds": 1,
                      "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                          {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}},
                      "containers": [{"name": "db", "image": "host", "command": ["sleep", "3600"]}]}}}},
    ]


def _apply(cluster: NetCluster, objs: list[dict[str, Any]]) -> None:
    done = cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    assert done.returncode == 0, done.stderr


def _wait(check: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what} (last: {got!r})"
        time.sleep(0.2)


def _ready_dbs(cluster: NetCluster) -> dict[str, Any] | None:
    ready = {p["metadata"]["name"]: p for p in cluster.kubectl_json("get", "pods", "-n", NS)["items"]
             if p["metadata"]["name"].startswith("db-") and any(
                 c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))}
    return ready if len(ready) == 2 else None


def _nslookup(cluster: NetCluster, netns: str, server: str, name: str) -> list[str]:
    """Addresses for ``name`` asked of ``server`` from a node's namespace (busybox nslookup)."""
    out = cluster.sh(netns, "busybox", "nslookup", "-type=A", name, server, timeout=10).stdout
    answers = out.split("Name:", 1)[1] if "Name:" in out else ""
    return [ln.split()[-1] for ln in answers.splitlines() if ln.strip().startswith("Address")]


def test_each_node_resolves_services_and_statefulset_pods_across_nodes(netcluster_factory: NetClusterFactory) -> None:
    cluster = netcluster_factory(nodes=2)
    _apply(cluster, _manifests())
    dbs = _wait(lambda: _ready_dbs(cluster), 90, "db-0 and db-1 Ready")
    assert {p["spec"]["nodeName"] for p in dbs.values()} == {"n1", "n2"}  # one on each node
    web_ip = cluster.kubectl_json("get", "service", "web", "-n", NS)["spec"]["clusterIP"]
    api_ip = cluster.kubectl_json("get", "service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    probes = run_pods(cluster, [pod(f"probe-{n.name}", n.name, ["sh", "-c", PROBE], namespace=NS)
                                for n in cluster.nodes], timeout=90)
    for node in cluster.nodes:
        name = f"probe-{node.name}"
        logs = _wait(lambda name=name: (out := cluster.kubectl("logs", "-n", NS, name).stdout).count("\n") >= 7 and out,
                     30, f"{name}'s output")
        got = dict(line.split(" ", 1) for line in logs.splitlines() if " " in line)
        pod_cidr = cluster.kubectl_json("get", "node", node.name)["spec"]["podCIDR"]
        gateway = str(ipaddress.ip_network(pod_cidr)[1])
        assert got["nameserver"] == gateway, f"{name} does not use its own node's DNS"
        assert got["web"] == web_ip and got["web.dnsmn.svc.cluster.local"] == web_ip
        assert got["db-0.db"] == dbs["db-0"]["status"]["podIP"] and got["db-1.db"] == dbs["db-1"]["status"]["podIP"]
        assert got["kubernetes.default"] == api_ip
        assert got["nx"] == "1"
        assert probes[name]["spec"]["nodeName"] == node.name

    # A new Service answers on every node soon after its creation (the 1 s target itself is
    # measured without process start-ups in tests/integration/test_dns_server.py and bench/dns.py;
    # here each poll starts `ip netns exec busybox nslookup`, which a loaded machine makes slow).
    gateways = {n.name: str(ipaddress.ip_network(cluster.kubectl_json("get", "node", n.name)["spec"]["podCIDR"])[1])
                for n in cluster.nodes}
    _apply(cluster, [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "late", "namespace": NS},
                      "spec": {"ports": [{"port": 80}]}}])
    created = time.monotonic()
    seen: dict[str, float] = {}
    while len(seen) < len(cluster.nodes):
        for node in cluster.nodes:
            if node.name not in seen and _nslookup(cluster, node.netns, gateways[node.name],
                                                   "late.dnsmn.svc.cluster.local"):
                seen[node.name] = time.monotonic() - created
        assert time.monotonic() - created < 10, f"late resolved only on {sorted(seen)}"
    late_ip = cluster.kubectl_json("get", "service", "late", "-n", NS)["spec"]["clusterIP"]
    for node in cluster.nodes:
        assert _nslookup(cluster, node.netns, gateways[node.name], "late.dnsmn.svc.cluster.local") == [late_ip]
    assert max(seen.values()) < 3.0, seen

    # An agent restart: its DNS answers again once it is back (the address stays on the node).
    cluster.restart_agent("n1")
    n1 = cluster.node("n1")
    _wait(lambda: _nslookup(cluster, n1.netns, gateways["n1"], "late.dnsmn.svc.cluster.local") == [late_ip],
          20, "n1's DNS after its agent restarted")
    on_lo = cluster.sh(n1.netns, "ip", "-o", "addr", "show", "dev", "lo").stdout
    assert f"{gateways['n1']}/32" in on_lo

    # Node n2 dies: its StatefulSet pod leaves the headless Service's answer on n1 once the
    # node lifecycle marks it not ready (grace 4 s in the harness), with no step by hand.
    # (Only its absence is checked: with the harness's short grace, n1's own pods may have
    # been evicted too if its restart above was slow, and then be on their way back.)
    cluster.kill_node("n2")
    dead = next(p["status"]["podIP"] for p in dbs.values() if p["spec"]["nodeName"] == "n2")
    assert dead in _nslookup(cluster, n1.netns, gateways["n1"], "db.dnsmn.svc.cluster.local")
    answers: list[list[str]] = []

    def dead_gone() -> bool:
        answers.append(_nslookup(cluster, n1.netns, gateways["n1"], "db.dnsmn.svc.cluster.local"))
        return dead not in answers[-1]

    try:
        _wait(dead_gone, 60, "the dead node's pod to leave db's answer")
    except AssertionError as e:
        raise AssertionError(f"{e}; last answers {answers[-3:]}; pods: "
                             f"{cluster.kubectl('get', 'pods', '-n', NS, '-o', 'wide').stdout}") from None
