"""Services through the nodes' proxies, end to end with real pods on the multi-node harness
(tests/harness: two `bosun agent`s in network namespaces of their own, a client namespace
standing for a user outside the cluster). The web pods run on n1.

Covers: cluster IP from a pod and from the nodes, from a pod and the NodePort of the other
node (n2, no web pod: the nodes route each other's pods by plain routes here), why bridge
netfilter is on, hairpin,
ClientIP affinity, a Service without endpoints (or not programmed) refused at once, NodePort
(Cluster; Local keeping the client's address and not answered by a node without a local
endpoint), LoadBalancer on the nodes' addresses, pods leaving the cluster with the node's
address, readiness taking an endpoint out of rotation and back on every node, and an agent
restart that keeps established connections and doubles no rule.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.harness import NetCluster, Node
from tests.harness.fixtures import requires_netns

pytestmark = [pytest.mark.timeout(300), requires_netns]

SERVER = """
import http.server, socket
down = False
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global down
        down = {"/down": True, "/up": False}.get(self.path, down)
        body = f"{socket.gethostname()} {self.client_address[0]}".encode()
        self.send_response(503 if self.path == "/healthz" and down else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"""
GET = """
import sys, time, urllib.request
t = time.monotonic()
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 5).read().decode())
except Exception as e:
    print("ERR", type(getattr(e, "reason", e)).__name__, round(time.monotonic() - t, 2))
"""
# One connection kept open across an agent restart: a request, a line on stdin, another request.
KEEP = """
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
c.request("GET", "/"); print(c.getresponse().read().decode(), flush=True)
sys.stdin.readline()
c.request("GET", "/"); print(c.getresponse().read().decode(), flush=True)
"""


@dataclass
class Cluster:
    """The harness's cluster and this module's namespace of objects; web pods run on n1."""

    net: NetCluster
    ns: str

    @property
    def n1(self) -> Node:
        return self.net.node("n1")

    @property
    def n2(self) -> Node:
        return self.net.node("n2")

    def k(self, *args: str, stdin: str | None = None) -> str:
        out = self.net.kubectl("-n", self.ns, *args, input=stdin)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def from_pod(self, pod: str, url: str) -> str:
        return self.k("exec", pod, "--", "python3", "-c", GET, url).strip()

    def from_ns(self, netns: str, url: str, timeout: float = 5) -> str:
        return self.net.sh(netns, sys.executable, "-c", GET, url, str(timeout), check=True).stdout.strip()

    def nft(self, node: Node | None = None) -> str:
        return self.net.sh((node or self.n1).netns, "nft", "list", "table", "ip", "bosun", check=True).stdout

    def cluster_ip(self, svc: str) -> str:
        return self.k("get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}")

    def gateway(self, node: Node) -> str:
        """The node's address on its pod bridge: what masqueraded pod traffic comes from."""
        cidr = self.net.kubectl_json("get", "node", node.name)["spec"]["podCIDR"]
        return str(ipaddress.ip_network(cidr)[1])

    def wait(self, what: str, check: Callable[[], bool], within: float = 60) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.3)


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60).stdout


def _manifests(ns: str) -> list[dict[str, Any]]:
    def pod_spec(command: list[str], probe: bool = False, node: str = "n1") -> dict[str, Any]:
        c: dict[str, Any] = {"name": "app", "image": "host", "command": command}
        if probe:
            c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1,
                                   "failureThreshold": 1, "successThreshold": 1}
        return {"nodeName": node, "containers": [c], "terminationGracePeriodSeconds": 1}

    def svc(name: str, app: str, **spec: Any) -> dict[str, Any]:
        ports = spec.pop("ports", [{"port": 80, "targetPort": 8080}])
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": {"app": app}, "ports": ports, **spec}}

    server = ["python3", "-c", SERVER]
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec(server, probe=True)}}}
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
             "spec": pod_spec(cmd, node=node)}
            for name, cmd, node in (("client", ["sleep", "3600"], "n1"), ("solo", server, "n1"),
                                    ("far", ["sleep", "3600"], "n2"))]
    return [web, *pods, svc("web", "web"), svc("solo", "solo"), svc("nothing", "none"),
            svc("sticky", "web", sessionAffinity="ClientIP"),
            svc("np", "web", type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30080}]),
            svc("local", "web", type="NodePort", externalTrafficPolicy="Local",
                ports=[{"port": 80, "targetPort": 8080, "nodePort": 30081}]),
            svc("lb", "web", type="LoadBalancer", ports=[{"port": 8088, "targetPort": 8080}])]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # A long node grace: an agent restart (test below) on a loaded machine may take longer than
    # the harness's 4 s, and the node lifecycle would then evict the pods the test keeps using.
    with NetCluster(nodes=2, node_monitor_grace_period=30.0, pod_eviction_timeout=60.0) as net:
        cl = Cluster(net, f"px-{net.hid}")
        assert net.kubectl("create", "namespace", cl.ns).returncode == 0
        cl.k("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": _manifests(cl.ns)}))
        cl.wait("pods ready", lambda: cl.k("get", "pods", "-o",
                                           "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}"
                                           ).split() == ["True"] * 5, 120)
        yield cl


def _pods(cl: Cluster, app: str) -> dict[str, str]:
    """name -> pod IP of the pods labelled app=APP."""
    out = cl.k("get", "pods", "-l", f"app={app}", "-o",
               "jsonpath={range .items[*]}{.metadata.name}={.status.podIP}{\"\\n\"}{end}")
    return dict(line.split("=") for line in out.split())


def test_cluster_ip_from_pods_and_from_the_nodes(cluster: Cluster) -> None:
    web = _pods(cluster, "web")
    client_ip = _pods(cluster, "client")["client"]
    vip = cluster.cluster_ip("web")
    seen = set()
    for _ in range(12):
        name, source = cluster.from_pod("client", f"http://{vip}/").split()
        assert source == client_ip  # pod to pod through a Service keeps the source address
        seen.add(name)
    assert seen == set(web)  # both endpoints take turns
    assert cluster.from_ns(cluster.n1.netns, f"http://{vip}/").split()[0] in web


def test_other_node_reaches_the_service_and_the_node_port(cluster: Cluster) -> None:
    """n2 runs no web pod: its pods, itself and outside clients through its NodePort still reach
    the endpoints on n1. The nodes reach each other's pods by plain routes over their shared
    link here (what --backend host-gw programs; the overlay is another part's)."""
    for here, there in ((cluster.n1, cluster.n2), (cluster.n2, cluster.n1)):
        cidr = cluster.net.kubectl_json("get", "node", there.name)["spec"]["podCIDR"]
        cluster.net.sh(here.netns, "ip", "route", "replace", cidr, "via", there.ip, check=True)
    web = _pods(cluster, "web")
    vip = cluster.cluster_ip("web")
    assert cluster.from_pod("far", f"http://{vip}/").split()[0] in web
    assert cluster.from_ns(cluster.n2.netns, f"http://{vip}/").split()[0] in web
    name, source = cluster.from_ns(cluster.net.client_ns, f"http://{cluster.n2.ip}:30080/").split()
    assert name in web and source == cluster.n2.ip  # Cluster: masqueraded by the node it entered


def test_same_node_service_traffic_needs_bridge_netfilter(cluster: Cluster) -> None:
    """Why the proxy sets bridge-nf-call-iptables=1 in the node's namespace: the reply of a pod to
    a pod on the same bridge is switched, not routed; without the bridge calling the IP hooks it
    misses conntrack, keeps the endpoint's address instead of the Service's, and the client
    drops it. With it (per namespace since Linux 5.3, here by default too) the DNAT is undone."""
    def set_to(value: int) -> None:
        cluster.net.sh(cluster.n1.netns, "sh", "-c", f"echo {value} > /proc/sys/net/bridge/bridge-nf-call-iptables",
                       check=True)

    vip = cluster.cluster_ip("solo")
    try:
        set_to(0)
        assert cluster.from_pod("client", f"http://{vip}/").startswith("ERR")
    finally:
        set_to(1)
    assert cluster.from_pod("client", f"http://{vip}/").split()[0] == "solo"


def test_hairpin_a_pod_reaches_itself_through_its_service(cluster: Cluster) -> None:
    name, source = cluster.from_pod("solo", f"http://{cluster.cluster_ip('solo')}/").split()
    assert name == "solo"
    assert source == cluster.gateway(cluster.n1)  # masqueraded to the node's bridge address


def test_client_ip_affinity_keeps_one_endpoint(cluster: Cluster) -> None:
    vip = cluster.cluster_ip("sticky")
    assert len({cluster.from_pod("client", f"http://{vip}/").split()[0] for _ in range(6)}) == 1


def test_service_without_endpoints_refuses_at_once(cluster: Cluster) -> None:
    vip = cluster.cluster_ip("nothing")
    out = cluster.from_pod("client", f"http://{vip}/").split()
    assert out[:2] == ["ERR", "ConnectionRefusedError"] and float(out[2]) < 1
    for node in (cluster.n1, cluster.n2):
        out = cluster.from_ns(node.netns, f"http://{vip}/").split()
        assert out[:2] == ["ERR", "ConnectionRefusedError"] and float(out[2]) < 1
    # A Service address nobody was given yet is refused too, not sent out by some route.
    assert cluster.from_ns(cluster.n2.netns, "http://10.96.255.254/").split()[:2] == ["ERR", "ConnectionRefusedError"]


def test_node_port_cluster_and_local_from_outside(cluster: Cluster) -> None:
    """The routing mesh: under Local the pod sees the client's own address, and a node without
    a local endpoint does not answer (Docker Swarm's moby#25526, fixed)."""
    web = _pods(cluster, "web")
    name, source = cluster.from_ns(cluster.net.client_ns, f"http://{cluster.n1.ip}:30080/").split()
    assert name in web and source == cluster.gateway(cluster.n1)  # Cluster: masqueraded
    name, source = cluster.from_ns(cluster.net.client_ns, f"http://{cluster.n1.ip}:30081/").split()
    assert name in web and source == cluster.net.client_ip  # Local: the client's own address
    out = cluster.from_ns(cluster.net.client_ns, f"http://{cluster.n2.ip}:30081/", timeout=2).split()
    assert out[:2] == ["ERR", "TimeoutError"]  # n2 runs no web pod: dropped, not forwarded


def test_pods_leave_the_cluster_with_the_node_address(cluster: Cluster) -> None:
    """The pod masquerade (now in the proxy's table): outside the cluster, a pod's traffic
    carries the node's address, while inside it keeps its own (see the cluster IP test)."""
    outside = subprocess.Popen(["ip", "netns", "exec", cluster.net.client_ns, sys.executable, "-c", SERVER])
    try:
        url = f"http://{cluster.net.client_ip}:8080/"
        cluster.wait("a server outside the cluster", lambda: not cluster.from_ns(
            cluster.net.client_ns, url).startswith("ERR"), 10)
        assert cluster.from_pod("client", url).split()[1] == cluster.n1.ip
    finally:
        outside.kill()
        outside.wait()


API = """
import ssl, urllib.error, urllib.request
try:
    unverified = ssl._create_unverified_context()
    print(urllib.request.urlopen("https://10.96.0.1/version", timeout=5, context=unverified).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:
    print("ERR", type(getattr(e, "reason", e)).__name__)
"""


def test_pods_reach_the_api_server_through_the_kubernetes_service(cluster: Cluster) -> None:
    assert cluster.k("exec", "client", "--", "python3", "-c", API).strip() in ("200", "401", "403")
    # Its endpoint is the server's own address, and is put back when changed by hand.
    def endpoint() -> str:
        return cluster.net.kubectl("get", "endpointslice", "kubernetes", "-n", "default", "-o",
                                   "jsonpath={.endpoints[0].addresses[0]}").stdout
    assert endpoint() == cluster.net.manager_ip
    patch = json.dumps({"endpoints": [{"addresses": ["10.1.2.3"]}]})
    assert cluster.net.kubectl("patch", "endpointslice", "kubernetes", "-n", "default", "--type=merge",
                               "-p", patch).returncode == 0
    cluster.wait("the kubernetes endpoint put back", lambda: endpoint() == cluster.net.manager_ip, 15)


def test_load_balancer_answers_on_the_node_addresses(cluster: Cluster) -> None:
    want = sorted([cluster.n1.ip, cluster.n2.ip])
    cluster.wait("LoadBalancer ingress", lambda: sorted(cluster.k(
        "get", "svc", "lb", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}").split()) == want, 30)
    cluster.wait("the LoadBalancer address answering", lambda: not cluster.from_ns(
        cluster.net.client_ns, f"http://{cluster.n1.ip}:8088/").startswith("ERR"), 10)


def test_readiness_takes_an_endpoint_out_and_back(cluster: Cluster) -> None:
    web = _pods(cluster, "web")
    down, up = sorted(web)
    vip = cluster.cluster_ip("web")
    cluster.from_pod("client", f"http://{web[down]}:8080/down")
    target = f"dnat to {web[down]}:8080"
    # Every Service selecting the pod (web, np, local, lb...) has it once per rule: all of them must
    # take it back, or the next test's snapshot catches some still without it.
    counts = {node.name: cluster.nft(node).count(target) for node in (cluster.n1, cluster.n2)}

    def in_rotation(node: Node, want: bool) -> Callable[[], bool]:
        if want:
            return lambda: cluster.nft(node).count(target) == counts[node.name]
        return lambda: (target in cluster.nft(node)) == want

    for node in (cluster.n1, cluster.n2):
        cluster.wait(f"the failing pod leaving the rotation on {node.name}", in_rotation(node, False))
    assert {cluster.from_pod("client", f"http://{vip}/").split()[0] for _ in range(6)} == {up}
    cluster.from_pod("client", f"http://{web[down]}:8080/up")
    for node in (cluster.n1, cluster.n2):
        cluster.wait(f"the pod back in the rotation on {node.name}", in_rotation(node, True))


def test_agent_restart_keeps_connections_and_doubles_nothing(cluster: Cluster) -> None:
    vip = cluster.cluster_ip("web")

    def rules(text: str) -> list[str]:
        """The same rules (in creation order, which a rebuild changes), once; affinity entries aside."""
        return sorted(ln for ln in text.splitlines() if "timeout" not in ln)

    # A snapshot of settled rules only: the same twice, a second apart.
    before = cluster.nft()
    for _ in range(30):
        time.sleep(1)
        again = cluster.nft()
        if rules(again) == rules(before):
            break
        before = again
    keep = subprocess.Popen(["ip", "netns", "exec", cluster.n1.netns, sys.executable, "-c", KEEP, vip, "80"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert keep.stdout is not None and keep.stdin is not None
        first = keep.stdout.readline().split()[0]
        cluster.net.restart_agent("n1")
        keep.stdin.write("\n")
        keep.stdin.flush()
        assert keep.stdout.readline().split()[0] == first  # same connection, same endpoint
    finally:
        keep.kill()
        keep.wait()
    after = cluster.nft()
    assert rules(after) == rules(before)
    assert after.count("chain svc-") == before.count("chain svc-")
