"""The multi-node harness itself: nodes in network namespaces join as Ready, run real crun
containers each, die and get cut off as machines do, and leave nothing behind."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.harness import NetCluster, cgroups, netns
from tests.harness.fixtures import NetClusterFactory, requires_netns
from tests.harness.pods import pod, run_pods

from bosun.controllers._common import resource

pytestmark = [requires_netns, pytest.mark.timeout(180)]

NODES = resource("", "v1", "nodes")


def _internal_ip(node: dict[str, object]) -> str:
    addresses = node["status"]["addresses"]  # type: ignore[index]
    return next(a["address"] for a in addresses if a["type"] == "InternalIP")  # type: ignore[union-attr]


def _wait_condition(cluster: NetCluster, name: str, want: set[str], within: float) -> float:
    """Seconds until node ``name``'s Ready condition is one of ``want``."""
    start = time.monotonic()
    while True:
        status = cluster.node_conditions().get(name)
        if status in want:
            return time.monotonic() - start
        assert time.monotonic() - start < within, f"node {name} stayed Ready={status} for {within}s"
        time.sleep(0.2)


def test_three_nodes_are_ready_with_their_own_names_and_addresses(netcluster: NetCluster) -> None:
    items = netcluster.kubectl_json("get", "nodes")["items"]
    by_name = {n["metadata"]["name"]: n for n in items}
    assert sorted(by_name) == ["n1", "n2", "n3"]
    assert netcluster.node_conditions() == {"n1": "True", "n2": "True", "n3": "True"}
    assert {name: _internal_ip(n) for name, n in by_name.items()} == {n.name: n.ip for n in netcluster.nodes}
    assert len({n.ip for n in netcluster.nodes}) == 3 and len({n.netns for n in netcluster.nodes}) == 3
    # Every node reaches every other node and the control plane over the data-centre bridge,
    # and the client namespace reaches the nodes (but is no node).
    for node in netcluster.nodes:
        for target in [*(n.ip for n in netcluster.nodes), netcluster.manager_ip]:
            done = netcluster.sh(node.netns, "busybox", "ping", "-c1", "-W2", target)
            assert done.returncode == 0, f"{node.name} -> {target}: {done.stdout}{done.stderr}"
    assert netcluster.sh(netcluster.client_ns, "busybox", "ping", "-c1", "-W2", netcluster.nodes[0].ip).returncode == 0
    assert netcluster.client_ip not in {_internal_ip(n) for n in items}
    # Anything else routes to the network's router, which forwards nothing (no packet is sent
    # here: the route lookup and the router's setting say it).
    route = netcluster.sh(netcluster.nodes[0].netns, "ip", "route", "get", "203.0.113.7").stdout
    assert f"via {netcluster.router_ip} dev eth0" in route
    assert netcluster.net is not None
    forwarding = netcluster.sh(netcluster.net.bridge_ns, "sysctl", "-n", "net.ipv4.ip_forward")
    assert forwarding.stdout.strip() == "0"


async def test_the_api_is_served_to_the_test_process_with_a_certificate_for_the_manager_address(
        netcluster: NetCluster) -> None:
    async with netcluster.client() as client:  # verifies the server against the cluster CA
        nodes = await client.list(NODES)
    assert sorted(n["metadata"]["name"] for n in nodes["items"]) == ["n1", "n2", "n3"]
    assert netcluster.url == f"https://{netcluster.manager_ip}:6443"


def test_a_pod_pinned_to_each_node_runs_as_a_crun_container_in_that_node(netcluster: NetCluster) -> None:
    ns = "pinned"
    netcluster.kubectl("create", "namespace", ns)
    marker = f"pinned-{netcluster.hid}"
    # n1 bound directly (nodeName), the others placed by the scheduler (nodeSelector).
    pods = [pod(f"p-{n.name}", n.name, ["sh", "-c", f"echo {marker}-{n.name}; exec sleep 3600"], namespace=ns,
                scheduled=n.name != "n1") for n in netcluster.nodes]
    running = run_pods(netcluster, pods)
    for node in netcluster.nodes:
        p = running[f"p-{node.name}"]
        assert p["spec"]["nodeName"] == node.name and p["status"]["hostIP"] == node.ip
        # The container runs below that node's cgroup parent (crun put it there), nowhere else.
        cmdlines = [_cmdline(pid) for pid in cgroups.pids(f"{node.cgroup}/pods")]
        assert any(f"{marker}-{node.name}" in c or "sleep 3600" in c for c in cmdlines), cmdlines
        # Its address is on the node's own pod bridge: reachable from the node, and logs come
        # through the API server from the agent on the node's address.
        assert netcluster.sh(node.netns, "busybox", "ping", "-c1", "-W2", p["status"]["podIP"]).returncode == 0
        logs = netcluster.kubectl("logs", "-n", ns, f"p-{node.name}")
        assert logs.stdout.strip() == f"{marker}-{node.name}", logs.stderr


def test_pods_on_one_node_reach_each_other(netcluster: NetCluster) -> None:
    ns = "samenode"
    netcluster.kubectl("create", "namespace", ns)
    node = netcluster.nodes[1].name
    running = run_pods(netcluster, [
        pod("web", node, ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"], namespace=ns, ports=[8080]),
        pod("caller", node, ["sleep", "3600"], namespace=ns)])
    web_ip = running["web"]["status"]["podIP"]
    deadline = time.monotonic() + 20
    while True:
        got = netcluster.kubectl("exec", "-n", ns, "caller", "--", "wget", "-qO-", "-T", "2",
                                 f"http://{web_ip}:8080/hostname")
        if got.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert got.stdout.strip() == "web", got.stderr
    # The same from the caller's network namespace with the host's tools (no API round trip).
    route = netcluster.pod_sh(ns, "caller", "ip", "-4", "-o", "addr", "show", "eth0")
    assert running["caller"]["status"]["podIP"] in route.stdout, route.stderr
    fetched = netcluster.pod_sh(ns, "caller", "wget", "-qO-", "-T", "2", f"http://{web_ip}:8080/hostname")
    assert fetched.stdout.strip() == "web", fetched.stderr


def test_killed_and_partitioned_nodes_go_not_ready_and_a_healed_one_comes_back(
        netcluster_factory: NetClusterFactory) -> None:
    cluster = netcluster_factory(3)
    dead, cut = cluster.node("n3"), cluster.node("n2")
    cluster.kill_node("n3")
    cluster.partition("n2")
    assert cluster.sh(cut.netns, "busybox", "ping", "-c1", "-W1", cluster.manager_ip).returncode != 0
    assert dead.netns not in _netns() and cgroups.pids(dead.cgroup) == []
    assert cluster.net is not None
    deadline = time.monotonic() + 10  # the kernel frees a namespace (and its veth) a moment later
    while "n3" in cluster.sh(cluster.net.bridge_ns, "ip", "-o", "link", "show").stdout.replace("@", " ").split():
        assert time.monotonic() < deadline, "n3's port stayed on the bridge"
        time.sleep(0.1)
    grace = cluster.grace
    # NotReady (Unknown: no heartbeat) within the grace period plus the monitor's own period.
    assert _wait_condition(cluster, "n3", {"Unknown", "False"}, grace + 6) <= grace + 6
    _wait_condition(cluster, "n2", {"Unknown", "False"}, grace + 6)
    assert cluster.node_conditions()["n1"] == "True"
    cluster.heal("n2")
    _wait_condition(cluster, "n2", {"True"}, 30)
    assert cluster.node_conditions()["n3"] != "True"
    assert [n.name for n in cluster.nodes] == ["n1", "n2"]
    # A new machine joins under a new name and address, and runs pods.
    new = cluster.add_node()
    assert cluster.net is not None and (new.name, new.ip) == ("n4", cluster.net.host(14))
    assert cluster.node_conditions()["n4"] == "True"
    running = run_pods(cluster, [pod("on-new", "n4", ["sleep", "600"])])
    assert running["on-new"]["status"]["hostIP"] == new.ip


def _netns() -> list[str]:
    return [line.split()[0] for line in netns.ip("netns", "list").stdout.splitlines() if line.strip()]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""



def _container(cluster: NetCluster, ns: str, name: str) -> dict[str, Any]:
    p = cluster.kubectl_json("get", "pod", "-n", ns, name)
    statuses = p.get("status", {}).get("containerStatuses") or [{}]
    return {"ip": p.get("status", {}).get("podIP"), **statuses[0]}


def test_a_restarted_agent_keeps_its_pods_and_restarts_their_containers(
        netcluster_factory: NetClusterFactory) -> None:
    """``ip netns exec`` gives the agent a new mount namespace at each start, where the pods'
    namespace mounts are gone: the agent mounts them again from the pods' running processes,
    and makes a new sandbox for a pod that has none left."""
    # Long node timings: the agent is down for seconds and its pods must not be evicted.
    cluster = netcluster_factory(1, node_monitor_grace_period=30, pod_eviction_timeout=60)
    ns = "restart"
    cluster.kubectl("create", "namespace", ns)
    running = run_pods(cluster, [pod("steady", "n1", ["sleep", "3600"], namespace=ns),
                                 pod("crashy", "n1", ["sh", "-c", "sleep 5; exit 3"], namespace=ns)])
    steady_ip = running["steady"]["status"]["podIP"]
    cluster.restart_agent("n1", kill=True)
    deadline = time.monotonic() + 40
    while True:  # crashy's container ends after the restart and is started again in its namespaces
        crashy = _container(cluster, ns, "crashy")
        if crashy.get("restartCount", 0) >= 1 and "running" in crashy.get("state", {}):
            break
        assert time.monotonic() < deadline, crashy
        time.sleep(0.3)
    assert crashy["lastState"]["terminated"]["exitCode"] == 3, crashy  # its own exit, not a StartError
    steady = _container(cluster, ns, "steady")
    assert steady["restartCount"] == 0 and "running" in steady["state"] and steady["ip"] == steady_ip
    assert cluster.kubectl("exec", "-n", ns, "steady", "--", "busybox", "hostname").stdout.strip() == "steady"
    # A pod whose every container is dead while the agent is down loses its namespaces with
    # the old mount namespace; it gets a new sandbox and its container runs again.
    cluster.kubectl("delete", "pod", "-n", ns, "crashy", "--wait=false")
    run_pods(cluster, [pod("gone", "n1", ["sh", "-c", "sleep 2; exit 4"], namespace=ns)])
    node = cluster.node("n1")
    assert node.proc is not None
    node.proc.kill()
    node.proc.wait(10)
    time.sleep(3)  # gone's container exits meanwhile
    cluster.restart_agent("n1")
    deadline = time.monotonic() + 40
    while True:
        gone = _container(cluster, ns, "gone")
        if gone.get("restartCount", 0) >= 1 and "running" in gone.get("state", {}):
            break
        assert time.monotonic() < deadline, gone
        time.sleep(0.3)
    assert gone["lastState"]["terminated"]["exitCode"] == 4, gone
