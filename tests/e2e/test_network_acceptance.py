"""The networking issue's acceptance run, on three nodes of the harness: a front end and a back
end on different nodes talk by Service name, the application answers through its NodePort on
every node from a client outside the cluster, and it survives the death of the node that ran
half of its pods with no manual step (endpoints leave, replacements start on the survivors)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.harness import NetCluster
from tests.harness.fixtures import NetClusterFactory, requires_netns

pytestmark = [pytest.mark.timeout(300), requires_netns]

BACK = """
import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = socket.gethostname().encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"""
# The front end finds the back end by its Service's short name (cluster DNS, search path).
FRONT = """
import http.server, socket, urllib.request
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            back = urllib.request.urlopen("http://backend:8080/", timeout=3).read()
            body, code = socket.gethostname().encode() + b" -> " + back, 200
        except Exception as e:
            body, code = repr(e).encode(), 502
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"""


def deployment(name: str, source: str, role: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeSelector": {role: "yes"}, "terminationGracePeriodSeconds": 1,
                         "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                        "whenUnsatisfiable": "ScheduleAnyway",
                                                        "labelSelector": {"matchLabels": labels}}],
                         "containers": [{"name": name, "image": "host", "command": ["python3", "-c", source],
                                         "ports": [{"containerPort": 8080}],
                                         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}}


def service(name: str, port: int, node_port: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"port": port, "targetPort": 8080}]}
    if node_port:
        spec["type"] = "NodePort"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def ready_pods(cluster: NetCluster, ns: str, app: str) -> dict[str, str]:
    """Ready pods of ``app``: name -> node."""
    pods = cluster.kubectl_json("get", "pods", "-n", ns, "-l", f"app={app}")["items"]
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))}


def wait_for(check: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s (last: {got!r})")
        time.sleep(0.5)


def get(cluster: NetCluster, ip: str, port: int) -> str:
    """One request from the client namespace (a user outside the cluster)."""
    res = cluster.sh(cluster.client_ns, "curl", "-s", "-m", "3", f"http://{ip}:{port}/", timeout=10)
    return res.stdout if res.returncode == 0 else f"curl exit {res.returncode}"


def answered(answer: str) -> str | None:
    return answer if " -> " in answer else None


def test_front_and_back_end_across_nodes_survive_a_node_death(netcluster_factory: NetClusterFactory) -> None:
    cluster = netcluster_factory(3)
    n1, n2, n3 = (n.name for n in cluster.nodes)
    # n2 runs half of each tier: the node whose death the application must survive.
    for name, roles in ((n1, ["front"]), (n2, ["front", "back"]), (n3, ["back"])):
        assert cluster.kubectl("label", "node", name, *(f"{r}=yes" for r in roles)).returncode == 0
    ns = "shop"
    assert cluster.kubectl("create", "namespace", ns).returncode == 0
    objects = [deployment("backend", BACK, "back"), service("backend", 8080, False),
               deployment("frontend", FRONT, "front"), service("frontend", 80, True)]
    done = cluster.kubectl("apply", "-n", ns, "-f", "-",
                           input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    assert done.returncode == 0, done.stderr

    def both(app: str) -> dict[str, str] | None:
        pods = ready_pods(cluster, ns, app)
        return pods if len(pods) == 2 else None

    back = wait_for(lambda: both("backend"), 90, "backend ready")
    front = wait_for(lambda: both("frontend"), 90, "frontend ready")
    assert sorted(back.values()) == [n2, n3] and sorted(front.values()) == [n1, n2]
    port = cluster.kubectl_json("get", "service", "-n", ns, "frontend")["spec"]["ports"][0]["nodePort"]

    # From outside, on every node's address: a front end answers with a back end's name.
    seen_front, seen_back = set(), set()
    for node in cluster.nodes:
        for _ in range(6):
            answer = wait_for(lambda ip=node.ip: answered(get(cluster, ip, port)), 30,
                              f"the application through {node.name}'s NodePort")
            f, b = answer.split(" -> ")
            seen_front.add(f)
            seen_back.add(b)
    assert seen_back <= set(back) and seen_front <= set(front)
    assert len(seen_back) == 2, "requests are balanced over both back ends"

    # n2 dies with one front end and one back end on it.
    cluster.kill_node(n2)
    dead_back = next(name for name, node in back.items() if node == n2)
    survivors = list(cluster.nodes)

    def healthy() -> bool:
        """Ten answers in a row through every surviving node, none from the dead back end."""
        for node in survivors:
            for _ in range(5):
                answer = get(cluster, node.ip, port)
                if " -> " not in answer or answer.endswith(dead_back):
                    return False
        return True

    wait_for(healthy, 60, "the application answering through the surviving nodes")
    # No manual step: the controllers replace the lost pods on the nodes that are left.
    wait_for(lambda: len(ready_pods(cluster, ns, "backend")) == 2 and n2 not in ready_pods(cluster, ns, "backend")
             .values(), 90, "a replacement back end on a surviving node")
    wait_for(lambda: len(ready_pods(cluster, ns, "frontend")) == 2 and n2 not in ready_pods(cluster, ns, "frontend")
             .values(), 90, "a replacement front end on a surviving node")
    assert healthy()
