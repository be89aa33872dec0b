"""Cluster DNS benchmark: queries/s and p99 of one node's DNS server, and the time from a
Service create to its name resolving.

    .venv/bin/python bench/dns.py [--runs 3] [--seconds 5] [--services 200]   (as root)

One node, as a user runs it: a `bosun server` and a `bosun agent` (their own processes) in a
network namespace the benchmark makes and removes, ``--services`` Services (a tenth of them headless, with a ready
endpoint each). The load generator is a third process (bench/_dns_load.py) on the node,
sending a mix a pod's resolver sends: Service A records, SRV, headless A, and the search-path
misses that ndots:5 makes (NXDOMAIN). Measured each run:

  max        as fast as answered (a window of 32 queries in flight): queries/s, p99
  uncached   the same, every name new (NXDOMAIN, none from the server's answer cache)
  at 5,000/s a fixed offered rate of 5,000 queries/s: p99 latency (the issue's target pair)
  create     Service created -> its name answers the new cluster IP, 20 times: p50/p99/max

Latency is the machine's as much as the server's: on 2 shared cores a process waits its
turn for milliseconds at a time, so the results also hold the load average at the start,
the agent's CPU time per query (its own cost) and, per phase, the 50 ms windows that were
slower than the p99 target (``stalls``: periodic ones would point at the agent, scattered
ones at the machine). Medians of the runs are printed against the targets (>= 5,000 queries/s with p99 < 5 ms; a
new Service resolving within 1 s) and written to bench/results/dns-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnslib import DNSRecord
from tests.harness import cgroups
from tests.harness.sweep import mounts_under
from tests.integration.dns_env import entered, namespaces

from _cli import results_header, run_async, text_table, write_result
from _procs import cpu_seconds, free_port, start_ready, stop_process
from _stats import summarize
from bosun.api.registry import must_by_plural
from bosun.client.rest import ApiError, Client

RESULTS = Path(__file__).resolve().parent / "results"
BOSUN = Path(sys.executable).parent / "bosun"
LOAD = Path(__file__).resolve().parent / "_dns_load.py"
POD_CIDR = "10.244.9.0/24"
DNS = "10.244.9.1"
NS = "bench"
NODE = "dns-bench"
RATE_TARGET, P99_TARGET_MS, CREATE_TARGET_MS = 5000.0, 5.0, 1000.0
SERVICES = must_by_plural("", "v1", "services")
SLICES = must_by_plural("discovery.k8s.io", "v1", "endpointslices")
NAMESPACES = must_by_plural("", "v1", "namespaces")
NODES = must_by_plural("", "v1", "nodes")
Obj = dict[str, Any]


def query_mix(services: int) -> list[str]:
    """NAME:TYPE of a pod's resolver traffic: mostly A of Services, some SRV, headless names
    and the NXDOMAIN of search-path expansions."""
    out = []
    for i in range(services):
        fq = f"svc-{i}.{NS}.svc.cluster.local"
        out.append(f"{fq}:A")
        if i % 10 == 0:
            out.append(f"_http._tcp.{fq}:SRV")
            out.append(f"{fq}.{NS}.svc.cluster.local:A")  # ndots:5 tries this first: NXDOMAIN
            out.append(f"{fq}:AAAA")
    return out


async def ready_node(client: Client) -> None:
    """The node registered and Ready (a pod bound to a node not yet there is collected)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            node = await client.get(NODES, NODE)
            if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])):
                return
        except ApiError as e:
            if e.status != 404:
                raise
        if time.monotonic() > deadline:
            raise RuntimeError("the agent never became a Ready node")
        await asyncio.sleep(0.2)


async def setup(client: Client, services: int) -> None:
    await ready_node(client)
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for i in range(services):
        headless = i % 10 == 0
        await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
                                       "spec": {"ports": [{"name": "http", "port": 80}],
                                                **({"clusterIP": "None"} if headless else {})}}, NS)
        if headless:
            await client.create(SLICES, {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": f"svc-{i}-x", "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                "endpoints": [{"addresses": [f"10.244.9.{100 + i // 10}"], "conditions": {"ready": True}}]}, NS)
    deadline = time.monotonic() + 60
    probe = DNSRecord.question(f"svc-1.{NS}.svc.cluster.local").pack()
    while resolve_once(probe) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the node's DNS server never answered")
        await asyncio.sleep(0.2)


def resolve_once(query: bytes, timeout: float = 0.2) -> DNSRecord | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(query, (DNS, 53))
            return DNSRecord.parse(s.recv(4096))
        except OSError:
            return None


def load(mode: str, level: float, seconds: float, mix: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(LOAD), DNS, mode, str(level), str(seconds), *mix],
                         capture_output=True, text=True, check=True, timeout=seconds + 30)
    raw = json.loads(out.stdout)
    stats = summarize([x / 1000 for x in raw["latencies_ms"]], raw["seconds"])
    return {"qps": stats["ops_per_s"], "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"],
            "max_ms": stats["max_ms"], "lost": raw["lost"], "stalls": stalls(raw)}


async def phase(agent_pid: int, mode: str, level: float, seconds: float, mix: list[str]) -> dict[str, Any]:
    """One load phase, with the agent's CPU time per answered query (its own cost, apart
    from the time the machine's other work keeps it waiting)."""
    cpu0 = cpu_seconds(agent_pid)
    out = await asyncio.to_thread(load, mode, level, seconds, mix)
    out["agent_cpu_s"] = round(cpu_seconds(agent_pid) - cpu0, 2)
    out["agent_cpu_us_per_query"] = round(out["agent_cpu_s"] * 1e6 / max(1.0, out["qps"] * seconds), 1)
    return out


def stalls(raw: dict[str, Any]) -> list[list[float]]:
    """[second into the run, worst ms] of each 50 ms window holding a query slower than the
    p99 target: where the time went (periodic: something in the agent; scattered: the machine)."""
    worst: dict[float, float] = {}
    for t, ms in zip(raw["sent_s"], raw["latencies_ms"], strict=True):
        if ms > P99_TARGET_MS:
            window = round(t - t % 0.05, 2)
            worst[window] = max(worst.get(window, 0.0), ms)
    return [[t, ms] for t, ms in sorted(worst.items())]


def wait_for_ip(name: str, ip: str, t0: float, limit: float = 10.0) -> float:
    query = DNSRecord.question(name).pack()
    while time.perf_counter() - t0 < limit:
        answer = resolve_once(query, 0.05)
        if answer is not None and any(str(rr.rdata) == ip for rr in answer.rr):
            return time.perf_counter() - t0
        time.sleep(0.001)
    return float("inf")


async def create_to_resolve(client: Client, run: int, times: int) -> dict[str, Any]:
    seconds = []
    for i in range(times):
        name = f"new-{run}-{i}"
        t0 = time.perf_counter()
        svc = await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                                             "spec": {"ports": [{"port": 80}]}}, NS)
        seconds.append(await asyncio.to_thread(wait_for_ip, f"{name}.{NS}.svc.cluster.local",
                                               svc["spec"]["clusterIP"], t0))
    s = summarize(seconds, 1.0)
    return {"p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "max_ms": s["max_ms"]}


async def measure(args: argparse.Namespace, kubeconfig: str, agent_pid: int) -> list[dict[str, Any]]:
    mix = query_mix(args.services)
    runs = []
    async with Client.from_kubeconfig(kubeconfig) as client:
        await setup(client, args.services)
        for run in range(args.runs):
            peak = await phase(agent_pid, "closed", 32, args.seconds, mix)
            uncached = await phase(agent_pid, "unique", 32, args.seconds, mix)
            paced = await phase(agent_pid, "paced", RATE_TARGET, args.seconds, mix)
            created = await create_to_resolve(client, run, args.creates)
            runs.append({"max": peak, "uncached": uncached, "at_5000": paced, "create": created})
            print(f"run {run + 1}: {peak['qps']:.0f} q/s (p99 {peak['p99_ms']} ms); at 5,000/s p99 "
                  f"{paced['p99_ms']} ms, lost {paced['lost']}; create->resolve p99 {created['p99_ms']} ms")
    return runs


def median(runs: list[dict[str, Any]], part: str, key: str) -> float:
    return round(statistics.median(r[part][key] for r in runs), 2)


def report(runs: list[dict[str, Any]]) -> dict[str, Any]:
    qps, p99 = median(runs, "max", "qps"), median(runs, "max", "p99_ms")
    paced_qps, paced_p99 = median(runs, "at_5000", "qps"), median(runs, "at_5000", "p99_ms")
    create_p99 = median(runs, "create", "p99_ms")
    verdict_rate = "ok" if qps >= RATE_TARGET else "MISSED"
    verdict_paced = "ok" if paced_p99 < P99_TARGET_MS and paced_qps >= RATE_TARGET * 0.98 else "MISSED"
    verdict_create = "ok" if create_p99 < CREATE_TARGET_MS else "MISSED"
    def cpu(part: str) -> str:
        return f"{median(runs, part, 'agent_cpu_us_per_query'):.0f} us"

    rows = [
        ["queries/s, as fast as answered", f"{qps:,.0f}", f"p99 {p99} ms", cpu("max"), ">= 5,000/s", verdict_rate],
        ["queries/s, no answer cached", f"{median(runs, 'uncached', 'qps'):,.0f}",
         f"p99 {median(runs, 'uncached', 'p99_ms')} ms", cpu("uncached"), "(information)", ""],
        ["p99 at 5,000 queries/s", f"{paced_p99} ms", f"p50 {median(runs, 'at_5000', 'p50_ms')} ms",
         cpu("at_5000"), "< 5 ms", verdict_paced],
        ["Service create -> resolves", f"p99 {create_p99} ms",
         f"p50 {median(runs, 'create', 'p50_ms')} ms", "", "< 1,000 ms", verdict_create],
    ]
    print()
    print(text_table(["DNS (one node), median of runs", "value", "also", "agent CPU/query", "target", "verdict"],
                     rows))
    return {"queries_per_s": qps, "p99_ms_at_max": p99,
            "uncached_queries_per_s": median(runs, "uncached", "qps"),
            "p99_ms_at_5000": paced_p99, "answered_at_5000": paced_qps,
            "create_to_resolve_p99_ms": create_p99,
            "verdicts": {"rate": verdict_rate, "p99": verdict_paced, "create": verdict_create}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load phase")
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--creates", type=int, default=20, help="Services created per run for create->resolve")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/dns.py: needs root (it makes a network namespace and runs a node in it)")
    note = "server, agent and load generator share the machine's cores (one node)"
    result = results_header(args, note)
    result["load_average_at_start"] = os.getloadavg()
    print(f"machine: {result['machine']}; load average {os.getloadavg()[0]:.1f} (other work on the machine)")
    with tempfile.TemporaryDirectory(prefix="bosun-dns-bench-") as tmp, namespaces("node") as ns, \
            entered(ns["node"]):
        data = Path(tmp)
        cgroup = ns["node"].name  # the agent, its shims and the pod: removed at the end whatever happens
        server = start_ready([str(BOSUN), "server", "--data-dir", str(data / "server"),
                              "--listen", f"127.0.0.1:{free_port()}"], data / "server.log", 60, "bosun server")
        agent = None
        try:
            kubeconfig = str(data / "server" / "kubeconfig")
            argv = ["ip", "netns", "exec", ns["node"].name, str(BOSUN), "agent", "--kubeconfig", kubeconfig,
                    "--name", NODE, "--data-dir", str(data / "agent"), "--port", "0", "--pod-cidr", POD_CIDR,
                    "--cgroup-parent", f"{cgroup}/pods", "--ipam-dir", str(data / "ipam")]
            with open(data / "agent.log", "wb") as log:
                agent = subprocess.Popen(cgroups.wrap(f"{cgroup}/agent", argv), stdout=subprocess.DEVNULL, stderr=log)
            runs = run_async(measure(args, kubeconfig, agent.pid))
        finally:
            if agent is not None:
                stop_process(agent, timeout=20)
            stop_process(server, timeout=20)
            cgroups.destroy(cgroup)
            for point in sorted(mounts_under(data), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    result["runs"] = runs
    result["summary"] = report(runs)
    if not args.no_write:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        write_result(result, RESULTS / f"dns-{stamp}.json")


if __name__ == "__main__":
    main()
