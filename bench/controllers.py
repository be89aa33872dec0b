"""Controllers benchmark (issue 4): a big Deployment on hollow nodes, rolled and partly killed.

    .venv/bin/python bench/controllers.py [--quick] [--replicas N] [--nodes N] [--profile DIR]

Starts a real `bosun server` (SQLite; every controller and the scheduler; the default node
monitor grace period and pod eviction timeout of 10 s), ``--nodes`` hollow nodes in one
`bosun hollow` process and ``--victim-nodes`` more in a second one, then measures:

  1. create     a Deployment of ``--replicas`` pods, from the create request to
                status.availableReplicas == replicas (target: 10,000 in under 30 s)
  2. rollout    a template change with maxSurge 25% / maxUnavailable 25%, from the PATCH to what
                `kubectl rollout status` waits for (peak live pods and the floor of ready pods
                are checked against the surge and unavailability limits)
  3. node death SIGKILL of the second hollow process; from the kill to every pod it was running
                having a Running+Ready replacement on another node (target: under 15 s)

Times come from watch events (informers) in this process. Each phase also reports when the last
pod was created, bound and reported Ready, so a missed target shows which stage lags, and the
CPU seconds used by the server, the hollow processes and this process (all share the box).
``--profile DIR`` records py-spy (raw, collapsed stacks) of the server during each phase.
Prints a table and writes bench/results/controllers-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli import results_header, run_async, text_table, write_result
from _ctrl_cluster import CtrlCluster, cpu_delta
from _ctrl_track import DEPLOYMENTS, NAMESPACES, NODES, Tracker
from _profile import start_profile, stop_profile
from bosun.client.rest import ApiError, Client
from bosun.hollow.nodes import node_name

RESULTS = Path(__file__).resolve().parent / "results"
NAMESPACE = "bench"
NAME = "web"
CREATE_TARGET_S = 30.0  # 10,000 replicas available (issue 4)
DEATH_TARGET_S = 15.0  # node death to replacements running (issue 4)
Obj = dict[str, Any]


def deployment(replicas: int) -> Obj:
    container = {"name": "app", "image": "registry.k8s.io/pause:3.10",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": NAME}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": NAME}}, "spec": {"containers": [container]}},
        },
    }


# -- profiling ----------------------------------------------------------------------------------

class Profiler:
    """py-spy on the server for one phase (nothing when no directory was asked for)."""

    def __init__(self, directory: str | None, pid: int) -> None:
        self.directory = Path(directory) if directory else None
        self.pid = pid
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, label: str) -> None:
        if self.directory is None:
            return
        self.proc = start_profile(self.pid, self.directory / f"controllers-{label}.txt", 100,
                                  "--format", "raw", "--nonblocking", settle=0.3)

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_profile(self.proc)
        self.proc = None


# -- phases -------------------------------------------------------------------------------------

async def warm_up(client: Client, within: float = 120) -> float:
    """Wait until the controllers and the scheduler lead and have synced: a 1-replica
    Deployment in its own namespace becomes available, then goes away."""
    t0 = time.perf_counter()
    ns = "bench-warm-up"
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    d = deployment(1)
    d["metadata"]["name"] = "warm-up"
    await client.create(DEPLOYMENTS, d, ns)
    while time.perf_counter() - t0 < within:
        got = await client.get(DEPLOYMENTS, "warm-up", ns)
        if (got.get("status") or {}).get("availableReplicas") == 1:
            await client.delete(NAMESPACES, ns)
            return time.perf_counter() - t0
        await asyncio.sleep(0.1)
    raise RuntimeError(f"a 1-replica Deployment was not available within {within}s")


def stages(tr: Tracker, t0: float) -> Obj:
    """When the last pod was created/bound/ready/deleted, in seconds after ``t0``."""
    out: Obj = {f"last_{k}_s": round(v - t0, 2) for k, v in tr.last.items()}
    out.update({f"{k}_events": v for k, v in tr.counts.items()})
    return out


async def phase_create(client: Client, tr: Tracker, replicas: int, within: float) -> Obj:
    tr.reset_window()
    t0 = time.perf_counter()
    await client.create(DEPLOYMENTS, deployment(replicas), NAMESPACE)
    try:
        t1 = await tr.wait_for(lambda: tr.available(NAME) >= replicas, within)
        done = True
    except TimeoutError:
        t1, done = time.perf_counter(), False
    return {"seconds": round(t1 - t0, 2), "completed": done, "available": tr.available(NAME),
            "pods_per_s": round(tr.available(NAME) / (t1 - t0), 1), **stages(tr, t0)}


async def phase_rollout(client: Client, tr: Tracker, replicas: int, within: float) -> Obj:
    tr.reset_window()
    surge, unavailable = math.ceil(replicas * 0.25), math.floor(replicas * 0.25)
    patch = {"spec": {"template": {"metadata": {"annotations": {"bench/revision": "2"}}}}}
    t0 = time.perf_counter()
    patched = await client.patch(DEPLOYMENTS, NAME, patch, NAMESPACE)
    generation = int(patched["metadata"]["generation"])
    try:
        t1 = await tr.wait_for(lambda: tr.rollout_complete(NAME, replicas, generation), within)
        done = True
    except TimeoutError:
        t1, done = time.perf_counter(), False
    return {"seconds": round(t1 - t0, 2), "completed": done,
            "peak_live_pods": tr.peak_live, "max_allowed": replicas + surge,
            "floor_ready_pods": tr.floor_ready, "min_allowed": replicas - unavailable,
            "within_limits": tr.peak_live <= replicas + surge and tr.floor_ready >= replicas - unavailable,
            **stages(tr, t0)}


async def _node_down_at(client: Client, names: list[str], t0: float, within: float) -> float | None:
    """Seconds from ``t0`` until every one of ``names`` is no longer Ready=True (a few GETs)."""
    left = set(names)
    while left and time.perf_counter() - t0 < within:
        for n in list(left):
            node = await client.get(NODES, n)
            ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or []
                          if c.get("type") == "Ready"), None)
            if ready != "True":
                left.discard(n)
        if left:
            await asyncio.sleep(0.2)
    return None if left else round(time.perf_counter() - t0, 2)


async def phase_death(cluster: CtrlCluster, client: Client, tr: Tracker, replicas: int,
                      victims: list[str], within: float) -> Obj:
    doomed = tr.on_nodes(set(victims))
    if not doomed:
        return {"seconds": 0.0, "completed": False, "pods_on_dead_nodes": 0,
                "note": "the scheduler put no pod on the victim nodes"}
    tr.exclude(set(victims))
    tr.reset_window()
    t0 = cluster.kill_hollow("victim")
    down = asyncio.create_task(_node_down_at(client, victims, t0, within))
    try:
        t_evicted = await tr.wait_for(lambda: not tr.on_nodes(set(victims)), within)
        t_replaced = await tr.wait_for(lambda: tr.ready_elsewhere >= replicas, within)
        done = True
    except TimeoutError:
        t_evicted = t_replaced = time.perf_counter()
        done = False
    t_avail = None
    if done:
        try:
            t_avail = await tr.wait_for(lambda: tr.available(NAME) >= replicas, 30)
        except TimeoutError:
            t_avail = None
    node_down = await down
    return {"seconds": round(t_replaced - t0, 2), "completed": done, "pods_on_dead_nodes": len(doomed),
            "dead_nodes": len(victims), "nodes_not_ready_s": node_down,
            "evicted_s": round(t_evicted - t0, 2),
            "deployment_available_s": round(t_avail - t0, 2) if t_avail else None,
            **stages(tr, t0)}


async def run_phase(name: str, cluster: CtrlCluster, prof: Profiler, coro: Any) -> Obj:
    prof.start(name)
    c0, w0 = cluster.cpu(), time.perf_counter()
    try:
        out: Obj = await coro
    finally:
        prof.stop()
    out["wall_s"] = round(time.perf_counter() - w0, 2)
    out.update(cpu_delta(c0, cluster.cpu()))
    print(f"  {name}: {out['seconds']:.2f} s{'' if out.get('completed') else ' (NOT completed)'}", flush=True)
    return out


async def main(args: argparse.Namespace) -> Obj:
    result = results_header(args, "server, hollow nodes and this benchmark share these CPUs; SQLite store")
    tmp = Path(tempfile.mkdtemp(prefix="bosun-bench-ctrl-"))
    cluster = CtrlCluster(tmp)
    try:
        t = time.perf_counter()
        cluster.start_server()
        cluster.start_hollow("hollow", args.nodes, args.heartbeat)
        cluster.start_hollow("victim", args.victim_nodes, args.victim_heartbeat)
        result["setup_s"] = round(time.perf_counter() - t, 2)
        print(f"server and {args.nodes}+{args.victim_nodes} hollow nodes up in {result['setup_s']:.1f} s "
              f"(server pid {cluster.server_pid})", flush=True)
        client = Client.from_kubeconfig(cluster.kubeconfig)
        tr = Tracker(client, NAMESPACE)
        prof = Profiler(args.profile, cluster.server_pid)
        try:
            result["warm_up_s"] = round(await warm_up(client), 2)
            await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": NAMESPACE}})
            await tr.start()
            victims = [node_name("victim", i) for i in range(args.victim_nodes)]
            phases: Obj = {}
            phases["create"] = await run_phase("create", cluster, prof,
                                               phase_create(client, tr, args.replicas, args.timeout))
            if phases["create"]["completed"] and not args.skip_rollout:
                phases["rollout"] = await run_phase("rollout", cluster, prof,
                                                    phase_rollout(client, tr, args.replicas, args.timeout))
            if phases["create"]["completed"]:
                phases["node_death"] = await run_phase(
                    "node_death", cluster, prof,
                    phase_death(cluster, client, tr, args.replicas, victims, args.timeout))
            result["phases"] = phases
        finally:
            prof.stop()
            await tr.stop()
            await client.close()
    finally:
        cluster.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


# -- report -------------------------------------------------------------------------------------

def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def table(result: Obj) -> str:
    headers = ["phase", "seconds", "done", "last created", "last bound", "last ready", "srv cpu%",
               "hollow cpu%", "bench cpu%", "notes"]
    rows = []
    for name, p in result.get("phases", {}).items():
        wall = p.get("wall_s") or 1.0
        if name == "rollout":
            note = (f"peak {p['peak_live_pods']}/{p['max_allowed']} live, floor {p['floor_ready_pods']}/"
                    f"{p['min_allowed']} ready")
        elif name == "node_death":
            note = (f"{p.get('pods_on_dead_nodes')} pods on {p.get('dead_nodes')} nodes; NotReady "
                    f"{_cell(p.get('nodes_not_ready_s'))} s, evicted {_cell(p.get('evicted_s'))} s")
        else:
            note = f"{p.get('pods_per_s', 0):.0f} pods/s"
        rows.append([name, _cell(p["seconds"]), "yes" if p.get("completed") else "NO",
                     _cell(p.get("last_created_s")), _cell(p.get("last_bound_s")), _cell(p.get("last_ready_s")),
                     f"{100 * p.get('server_cpu_s', 0) / wall:.0f}", f"{100 * p.get('hollow_cpu_s', 0) / wall:.0f}",
                     f"{100 * p.get('bench_cpu_s', 0) / wall:.0f}", note])
    return text_table(headers, rows)


def verdicts(result: Obj) -> list[str]:
    p, n = result.get("phases", {}), result["params"]["replicas"]
    out = []
    if "create" in p:
        c = p["create"]
        target = CREATE_TARGET_S if n >= 10000 else None
        ok = "" if target is None else (" MET" if c["completed"] and c["seconds"] < target else " MISSED")
        out.append(f"{n} replicas available: {c['seconds']:.1f} s"
                   + (f" (target < {target:.0f} s at 10,000:{ok})" if target else " (target applies to 10,000)"))
    if "rollout" in p:
        r = p["rollout"]
        out.append(f"rolling update (maxSurge 25%): {r['seconds']:.1f} s, limits "
                   f"{'respected' if r['within_limits'] else 'EXCEEDED'}")
    if "node_death" in p:
        d = p["node_death"]
        ok = "MET" if d["completed"] and d["seconds"] < DEATH_TARGET_S else "MISSED"
        out.append(f"node death -> {d.get('pods_on_dead_nodes')} replacements running: {d['seconds']:.1f} s "
                   f"(target < {DEATH_TARGET_S:.0f} s: {ok})")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 replicas on 100 nodes (well under 2 minutes)")
    ap.add_argument("--replicas", type=int, help="Deployment size (default 10,000; 1,000 with --quick)")
    ap.add_argument("--nodes", type=int, help="hollow nodes that live (default 1,000; 100 with --quick)")
    ap.add_argument("--victim-nodes", type=int, default=4, help="hollow nodes in the process that is killed")
    ap.add_argument("--heartbeat", type=float, default=5.0,
                    help="Lease renewal period of the live hollow nodes (s; the grace period is 10 s)")
    ap.add_argument("--victim-heartbeat", type=float, default=2.0,
                    help="Lease renewal period of the nodes that die (s; an agent's default)")
    ap.add_argument("--timeout", type=float, default=300.0, help="give up on a phase after this many seconds")
    ap.add_argument("--skip-rollout", action="store_true", help="measure create and node death only")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the server during each phase into DIR")
    ap.add_argument("--keep", action="store_true", help="keep the data directory (server and hollow logs)")
    ap.add_argument("--output", metavar="PATH", help="results file (default bench/results/controllers-<time>.json)")
    ap.add_argument("--no-write", action="store_true", help="do not write a results file")
    args = ap.parse_args(argv)
    args.replicas = args.replicas or (1000 if args.quick else 10000)
    args.nodes = args.nodes or (100 if args.quick else 1000)
    return args


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t0 = time.perf_counter()
    result = run_async(main(args))
    result["total_s"] = round(time.perf_counter() - t0, 1)
    m = result["machine"]
    print(f"\nBosun controllers benchmark, commit {m['commit']}, {m['cpus']} CPUs, {args.nodes}+{args.victim_nodes} "
          f"hollow nodes, {args.replicas} replicas, total {result['total_s']:.0f} s")
    print("times in seconds from the phase's start; cpu% is of one core over the phase (200% = 2 cores)\n")
    print(table(result))
    print()
    for line in verdicts(result):
        print(line)
    if not args.no_write:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        write_result(result, Path(args.output) if args.output else RESULTS / f"controllers-{stamp}.json")


if __name__ == "__main__":
    try:
        run()
    except ApiError as e:
        sys.exit(f"API error: {e}")
