"""The data path, side by side in one run on the multi-node harness (two nodes, real crun
pods): throughput (iperf3, Debian's) and request/response latency (1-byte TCP round trips)
for pod -> pod on one node, pod -> pod across nodes (through VXLAN), pod -> Service cluster IP
and client -> NodePort (``externalTrafficPolicy: Local``, the endpoint on the node asked),
each also as a ratio to same-node pod -> pod. Every packet stays inside namespaces the harness
made; the harness removes them when the run ends.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from tests.harness import NetCluster
from tests.harness.pods import run_pods

from _cli import text_table

NS = "netpath"
IPERF_PORT, ECHO_PORT = 5201, 7000
TARGET_VIP_RATIO = 0.9
ECHO = """
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 7000)); s.listen(16)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (b := c.recv(1)):
        c.sendall(b)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""
# Round trips of one byte on one connection; prints p50 and p99 in microseconds.
LATENCY = """
import json, socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
out = []
for i in range(int(sys.argv[3])):
    t = time.perf_counter(); c.sendall(b"x"); c.recv(1); out.append((time.perf_counter() - t) * 1e6)
out = sorted(out[50:])
print(json.dumps({"p50_us": out[len(out) // 2], "p99_us": out[int(len(out) * 0.99)]}))
"""


def _pod(name: str, node: str, containers: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": containers}}


def _servers() -> list[dict[str, Any]]:
    return [{"name": "iperf", "image": "host", "command": ["iperf3", "-s", "-p", str(IPERF_PORT)]},
            {"name": "echo", "image": "host", "command": ["python3", "-c", ECHO]}]


def _setup(cluster: NetCluster) -> dict[str, str]:
    n1, n2 = cluster.nodes[0].name, cluster.nodes[1].name
    assert cluster.kubectl("create", "namespace", NS).returncode == 0
    pods = run_pods(cluster, [
        _pod("server-1", n1, _servers(), {"app": "server-1"}),
        _pod("server-2", n2, _servers(), {"app": "server-2"}),
        _pod("client", n1, [{"name": "c", "image": "host", "command": ["sleep", "86400"]}], {"app": "client"}),
    ], timeout=120)
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server-1", "namespace": NS},
           "spec": {"type": "NodePort", "externalTrafficPolicy": "Local", "selector": {"app": "server-1"},
                    "ports": [{"name": "iperf", "port": IPERF_PORT}, {"name": "echo", "port": ECHO_PORT}]}}
    assert cluster.kubectl("apply", "-f", "-", input=json.dumps(svc)).returncode == 0
    got = cluster.kubectl_json("get", "service", "-n", NS, "server-1")
    ports = {p["name"]: p["nodePort"] for p in got["spec"]["ports"]}
    return {"same_node": pods["server-1"]["status"]["podIP"], "cross_node": pods["server-2"]["status"]["podIP"],
            "vip": got["spec"]["clusterIP"], "node_ip": cluster.nodes[0].ip,
            "np_iperf": str(ports["iperf"]), "np_echo": str(ports["echo"])}


def _from_pod(cluster: NetCluster, *cmd: str) -> str:
    done = cluster.kubectl("exec", "-n", NS, "client", "--", *cmd, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _from_client(cluster: NetCluster, *cmd: str) -> str:
    done = cluster.sh(cluster.client_ns, *cmd, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _measure(cluster: NetCluster, run: Any, host: str, iperf_port: str, echo_port: str, seconds: int,
             trips: int) -> dict[str, float]:
    iperf = json.loads(run(cluster, "iperf3", "-c", host, "-p", iperf_port, "-t", str(seconds), "-J"))
    latency = json.loads(run(cluster, "python3", "-c", LATENCY, host, echo_port, str(trips)))
    return {"gbit_s": iperf["end"]["sum_received"]["bits_per_second"] / 1e9, **latency}


def measure_once(cluster: NetCluster, t: dict[str, str], seconds: int = 3, trips: int = 2000
                 ) -> dict[str, dict[str, float]]:
    p, e = str(IPERF_PORT), str(ECHO_PORT)
    return {
        "pod->pod same node": _measure(cluster, _from_pod, t["same_node"], p, e, seconds, trips),
        "pod->pod across nodes (vxlan)": _measure(cluster, _from_pod, t["cross_node"], p, e, seconds, trips),
        "pod->Service VIP": _measure(cluster, _from_pod, t["vip"], p, e, seconds, trips),
        "client->NodePort (Local)": _measure(cluster, _from_client, t["node_ip"], t["np_iperf"], t["np_echo"],
                                             seconds, trips),
    }


def run_datapath(runs: int, seconds: int = 3) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``runs`` rounds of every path on one 2-node cluster; returns (summary of medians, runs)."""
    started = time.monotonic()
    with NetCluster(nodes=2) as cluster:
        targets = _setup(cluster)
        results = [measure_once(cluster, targets, seconds) for _ in range(runs)]
    paths = list(results[0])
    base = statistics.median(r[paths[0]]["gbit_s"] for r in results)
    base_p50 = statistics.median(r[paths[0]]["p50_us"] for r in results)
    summary: dict[str, Any] = {"seconds": round(time.monotonic() - started, 1)}
    rows = []
    for path in paths:
        gbit = statistics.median(r[path]["gbit_s"] for r in results)
        p50 = statistics.median(r[path]["p50_us"] for r in results)
        p99 = statistics.median(r[path]["p99_us"] for r in results)
        ratio = gbit / base if base else 0.0
        verdict = ""
        if path == "pod->Service VIP":
            verdict = "met" if ratio >= TARGET_VIP_RATIO else "MISSED"
        summary[path] = {"gbit_s": gbit, "p50_us": p50, "p99_us": p99, "throughput_ratio": ratio,
                         "p50_ratio": p50 / base_p50 if base_p50 else 0.0}
        rows.append([path, f"{gbit:.2f}", f"{ratio:.2f}x", f"{p50:.0f}", f"{p99:.0f}",
                     f">= {TARGET_VIP_RATIO}x" if verdict else "", verdict])
    print(f"\ndata path, median of {runs} run(s) ({seconds} s iperf3 each; latency: 1-byte TCP round trips)\n")
    print(text_table(["path", "Gbit/s", "vs same node", "p50 us", "p99 us", "target", "verdict"], rows))
    return summary, results
