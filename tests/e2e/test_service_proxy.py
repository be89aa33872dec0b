"""Services through the node's proxy, end to end with real pods: a control plane in this
process, one `bosun agent` (oci runtime) in a network namespace of the test's, and a client
namespace standing for a user outside the cluster.

Covers: cluster IP from a pod and from the node, hairpin, ClientIP affinity, a Service without
endpoints refused at once, NodePort (Cluster and Local, with the client's address kept under
Local), LoadBalancer on the node's address, readiness taking an endpoint out of rotation and
back, and an agent restart that keeps established connections and doubles no rule.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, start_server
from tests.e2e.helpers import Kubectl

from bosun.controlplane import ControlPlaneOptions

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("crun"),
                                 reason="needs root, nft and crun")]

BOSUN = str(Path(sys.executable).with_name("bosun"))
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
    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
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
    tag: str
    node_ns: str
    client_ns: str
    node_ip: str  # on the link to the control plane
    edge_ip: str  # the node's address on the client's link
    client_ip: str
    pod_cidr: str
    plane: RunningServer
    kubectl: Kubectl
    ns: str
    start_agent: Callable[[], subprocess.Popen[str]]
    agent: subprocess.Popen[str] | None = None

    def k(self, *args: str, stdin: str | None = None) -> str:
        out = self.kubectl("-n", self.ns, *args, stdin=stdin)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def from_pod(self, pod: str, url: str) -> str:
        return self.k("exec", pod, "--", "python3", "-c", GET, url).strip()

    def from_ns(self, netns: str, url: str) -> str:
        return sh("nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", GET, url).strip()

    def nft(self) -> str:
        return sh("nsenter", f"--net=/run/netns/{self.node_ns}", "nft", "list", "table", "ip", "bosun")

    def cluster_ip(self, svc: str) -> str:
        return self.k("get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}")

    def wait(self, what: str, check: Callable[[], bool], within: float = 60) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.3)


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60).stdout


def _manifests(ns: str) -> list[dict[str, Any]]:
    def pod_spec(command: list[str], probe: bool = False) -> dict[str, Any]:
        c: dict[str, Any] = {"name": "app", "image": "host", "command": command}
        if probe:
            c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1,
                                   "failureThreshold": 1, "successThreshold": 1}
        return {"containers": [c], "terminationGracePeriodSeconds": 1}

    def svc(name: str, app: str, **spec: Any) -> dict[str, Any]:
        ports = spec.pop("ports", [{"port": 80, "targetPort": 8080}])
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": {"app": app}, "ports": ports, **spec}}

    server = ["python3", "-c", SERVER]
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec(server, probe=True)}}}
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
             "spec": pod_spec(cmd)} for name, cmd in (("client", ["sleep", "3600"]), ("solo", server))]
    return [web, *pods, svc("web", "web"), svc("solo", "solo"), svc("nothing", "none"),
            svc("sticky", "web", sessionAffinity="ClientIP"),
            svc("np", "web", type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30080}]),
            svc("local", "web", type="NodePort", externalTrafficPolicy="Local",
                ports=[{"port": 80, "targetPort": 8080, "nodePort": 30081}]),
            svc("lb", "web", type="LoadBalancer", ports=[{"port": 8088, "targetPort": 8080}])]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("proxy-e2e")
    tag = uuid.uuid4().hex[:5]
    k = random.randrange(1, 250)
    node_ns, client_ns, host_if = f"bpxn{tag}", f"bpxc{tag}", f"bpxh{tag}"
    plane: RunningServer | None = None
    holder: list[subprocess.Popen[str]] = []
    try:
        sh("ip", "netns", "add", node_ns)
        sh("ip", "netns", "add", client_ns)
        # control plane (this process, root namespace) <-> node: one veth pair, addresses of our own.
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", node_ns)
        sh("ip", "addr", "add", f"10.78.{k}.1/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        n = ("ip", "-n", node_ns)
        sh(*n, "addr", "add", f"10.78.{k}.2/30", "dev", "eth0")
        sh(*n, "link", "set", "eth0", "up")
        sh(*n, "link", "set", "lo", "up")
        # The node reaches cluster IPs as it would by its default route (it has none here).
        sh(*n, "route", "add", "10.96.0.0/16", "via", f"10.78.{k}.1")
        # node <-> client: the "outside" user.
        sh(*n, "link", "add", "edge", "type", "veth", "peer", "name", "eth0", "netns", client_ns)
        sh(*n, "addr", "add", f"10.79.{k}.1/24", "dev", "edge")
        sh(*n, "link", "set", "edge", "up")
        c = ("ip", "-n", client_ns)
        sh(*c, "addr", "add", f"10.79.{k}.2/24", "dev", "eth0")
        sh(*c, "link", "set", "eth0", "up")
        sh(*c, "link", "set", "lo", "up")
        sh(*c, "route", "add", "default", "via", f"10.79.{k}.1")

        plane = start_server(tmp / "server", options=ControlPlaneOptions(), listen=f"10.78.{k}.1:0")
        kubectl = Kubectl(plane.kubeconfig, str(tmp))
        pod_cidr = f"10.244.{k}.0/24"

        def start_agent() -> subprocess.Popen[str]:
            with open(tmp / "agent.log", "a") as log:  # the agent's output, kept for a failure
                proc = subprocess.Popen(
                    ["nsenter", f"--net=/run/netns/{node_ns}", BOSUN, "agent", "--server", plane.url,
                     "--token", plane.token, "--name", f"bpx-{tag}", "--node-ip", f"10.78.{k}.2",
                     "--data-dir", str(tmp / "agent"), "--pod-cidr", pod_cidr, "--runtime", "oci",
                     "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT, text=True)
            holder.append(proc)
            return proc

        ns = f"px-{tag}"
        cl = Cluster(tag, node_ns, client_ns, f"10.78.{k}.2", f"10.79.{k}.1", f"10.79.{k}.2", pod_cidr, plane,
                     kubectl, ns, start_agent)
        cl.agent = start_agent()
        assert kubectl("create", "namespace", ns).returncode == 0
        cl.k("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": _manifests(ns)}))
        cl.wait("pods ready", lambda: cl.k("get", "pods", "-o",
                                           "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}"
                                           ).split() == ["True"] * 4, 120)
        yield cl
    finally:
        if plane is not None:
            subprocess.run(["kubectl", "--kubeconfig", plane.kubeconfig, "delete", "namespace", f"px-{tag}",
                            "--wait", "--timeout=60s"], capture_output=True, timeout=90)
        for proc in holder:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for name in (node_ns, client_ns):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        if plane is not None:
            plane.stop()


def _pods(cl: Cluster, app: str) -> dict[str, str]:
    """name -> pod IP of the pods labelled app=APP."""
    out = cl.k("get", "pods", "-l", f"app={app}", "-o",
               "jsonpath={range .items[*]}{.metadata.name}={.status.podIP}{\"\\n\"}{end}")
    return dict(line.split("=") for line in out.split())


def test_cluster_ip_from_pods_and_from_the_node(cluster: Cluster) -> None:
    web = _pods(cluster, "web")
    client_ip = _pods(cluster, "client")["client"]
    vip = cluster.cluster_ip("web")
    seen = set()
    for _ in range(12):
        name, source = cluster.from_pod("client", f"http://{vip}/").split()
        assert source == client_ip  # pod to pod through a Service keeps the source address
        seen.add(name)
    assert seen == set(web)  # both endpoints take turns
    assert cluster.from_ns(cluster.node_ns, f"http://{vip}/").split()[0] in web


def test_same_node_service_traffic_needs_bridge_netfilter(cluster: Cluster) -> None:
    """Why the proxy sets bridge-nf-call-iptables=1 in the node's namespace: the reply of a pod to
    a pod on the same bridge is switched, not routed; without the bridge calling the IP hooks it
    misses conntrack, keeps the endpoint's address instead of the Service's, and the client
    drops it. With it (per namespace since Linux 5.3, here by default too) the DNAT is undone."""
    def set_to(value: int) -> None:
        sh("nsenter", f"--net=/run/netns/{cluster.node_ns}", "sh", "-c",
           f"echo {value} > /proc/sys/net/bridge/bridge-nf-call-iptables")

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
    assert source == cluster.pod_cidr.replace(".0/24", ".1")  # masqueraded to the node's bridge address


def test_client_ip_affinity_keeps_one_endpoint(cluster: Cluster) -> None:
    vip = cluster.cluster_ip("sticky")
    assert len({cluster.from_pod("client", f"http://{vip}/").split()[0] for _ in range(6)}) == 1


def test_service_without_endpoints_refuses_at_once(cluster: Cluster) -> None:
    out = cluster.from_pod("client", f"http://{cluster.cluster_ip('nothing')}/").split()
    assert out[:2] == ["ERR", "ConnectionRefusedError"] and float(out[2]) < 1
    out = cluster.from_ns(cluster.node_ns, f"http://{cluster.cluster_ip('nothing')}/").split()
    assert out[:2] == ["ERR", "ConnectionRefusedError"]


def test_node_port_cluster_and_local_from_outside(cluster: Cluster) -> None:
    web = _pods(cluster, "web")
    gateway = cluster.pod_cidr.replace(".0/24", ".1")
    for ip in (cluster.edge_ip, cluster.node_ip):
        name, source = cluster.from_ns(cluster.client_ns, f"http://{ip}:30080/").split()
        assert name in web and source == gateway  # Cluster: masqueraded
    name, source = cluster.from_ns(cluster.client_ns, f"http://{cluster.edge_ip}:30081/").split()
    assert name in web and source == cluster.client_ip  # Local: the client's own address


def test_pods_leave_the_cluster_with_the_node_address(cluster: Cluster) -> None:
    """The pod masquerade (now in the proxy's table): outside the cluster CIDR, a pod's traffic
    carries the node's address, while inside it keeps its own (test_cluster_ip_... above)."""
    outside = subprocess.Popen(["ip", "netns", "exec", cluster.client_ns, sys.executable, "-c", SERVER])
    try:
        cluster.wait("a server outside the cluster", lambda: not cluster.from_ns(
            cluster.client_ns, f"http://{cluster.client_ip}:8080/").startswith("ERR"), 10)
        assert cluster.from_pod("client", f"http://{cluster.client_ip}:8080/").split()[1] == cluster.edge_ip
    finally:
        outside.kill()
        outside.wait()


def test_load_balancer_answers_on_the_node_address(cluster: Cluster) -> None:
    cluster.wait("LoadBalancer ingress", lambda: cluster.k(
        "get", "svc", "lb", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}") == cluster.node_ip, 30)
    cluster.wait("the LoadBalancer address answering", lambda: not cluster.from_ns(
        cluster.client_ns, f"http://{cluster.node_ip}:8088/").startswith("ERR"), 10)


def test_readiness_takes_an_endpoint_out_and_back(cluster: Cluster) -> None:
    web = _pods(cluster, "web")
    down, up = sorted(web)
    vip = cluster.cluster_ip("web")
    cluster.from_pod("client", f"http://{web[down]}:8080/down")
    cluster.wait("the failing pod leaving the rotation", lambda: web[down] not in cluster.nft(), 15)
    assert {cluster.from_pod("client", f"http://{vip}/").split()[0] for _ in range(6)} == {up}
    cluster.from_pod("client", f"http://{web[down]}:8080/up")
    cluster.wait("the pod back in the rotation", lambda: web[down] in cluster.nft(), 15)


def test_agent_restart_keeps_connections_and_doubles_nothing(cluster: Cluster) -> None:
    vip = cluster.cluster_ip("web")
    before = cluster.nft()
    keep = subprocess.Popen(["nsenter", f"--net=/run/netns/{cluster.node_ns}", sys.executable, "-c", KEEP,
                             vip, "80"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert keep.stdout is not None and keep.stdin is not None
        first = keep.stdout.readline().split()[0]
        assert cluster.agent is not None
        cluster.agent.send_signal(signal.SIGTERM)
        cluster.agent.wait(30)
        cluster.agent = cluster.start_agent()
        node = f"bpx-{cluster.tag}"
        time.sleep(2)
        cluster.wait("the restarted agent Ready", lambda: cluster.k(
            "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}") == "True")
        keep.stdin.write("\n")
        keep.stdin.flush()
        assert keep.stdout.readline().split()[0] == first  # same connection, same endpoint
    finally:
        keep.kill()
        keep.wait()
    after = cluster.nft()
    # The same rules (in creation order, which a rebuild changes), once; affinity entries aside.
    def rules(text: str) -> list[str]:
        return sorted(ln for ln in text.splitlines() if "timeout" not in ln)
    assert rules(after) == rules(before)
    assert after.count("chain svc-") == before.count("chain svc-")
