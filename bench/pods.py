"""Pod startup latency and memory of `bosun up` with real containers (oci driver, `host` image).

    sudo .venv/bin/python bench/pods.py [--quick] [--sizes 1,10,100] [--swarm-sizes 1,10,50,100] [--no-swarm]

Starts `bosun up --runtime oci` in its own process (fresh data dir, free ports), then for each
size N creates N pods at once (`sleep 3600`, and the same with an exec readiness probe
`true` every second) and watches them until all are Running and Ready; measures the RSS/PSS
of `bosun up` and its per-container shims idle and with the largest step running; deletes
everything, stops `bosun up` with SIGINT and checks that no shim or runtime process is left.
Prints a table and writes bench/results/pods-<timestamp>.json.

Then, with `bosun up` stopped so the two never compete for the cores, the same workload runs on
Docker Swarm (bench/_swarm.py: a private dockerd, `swarm init`, `service create --replicas N` of
`sleep 3600` from a locally imported busybox image) and one table puts both side by side with
the ratio of the all-Running times. The Swarm side needs Debian's engine and busybox, which the
benchmark does not install (CI does not need them):

    apt-get install -y docker.io busybox-static

Without them, or when dockerd cannot start, the Swarm side is skipped and the reason printed
and stored; `--no-swarm` skips it on purpose.

    sudo .venv/bin/python bench/pods.py --stop [--stop-pods 100] [--stop-grace 30] [--stop-runs 3]

measures stopping instead (bench/_pods_stop.py): Ctrl-C of `bosun up` with 100 pods that
ignore SIGTERM (target: the grace period + 5 s), and SIGKILL then restart until all 100 pods
are adopted; writes bench/results/pods-stop-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli import results_header, write_result
from _common import NAMESPACES
from _pods_docker import run_docker_driver
from _pods_phase import VARIANTS, delete_pods, run_pods, wait_node_ready
from _pods_procs import (
    BosunUp,
    cpu_by_kind,
    leftovers,
    machine_busy_seconds,
    memory_breakdown,
    runtime_state_leftovers,
    start_bosun_up,
    tree_cpu_seconds,
)
from _pods_stop import print_stop, stop_bench
from _procs import ROOT, cpu_seconds
from _profile import start_profile as start_py_spy
from _profile import stop_profile
from _swarm import run_swarm
from bosun.client.rest import Client

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"all_running_100_s": 5.0, "p99_ready_ms": 2000.0, "rss_mb": 200.0, "swarm_ratio": 3.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 and 10 pods only (under a minute)")
    ap.add_argument("--sizes", help="pods per step, e.g. 1,10,100 (default; quick: 1,10)")
    ap.add_argument("--variants", default="plain,probe",
                    help="comma-separated: plain, probe, hostnet (no CNI: what the pod network costs)")
    ap.add_argument("--profile", type=Path, help="py-spy the bosun up process during the largest step, SVG here")
    ap.add_argument("--profile-format", choices=("svg", "txt"), default="svg",
                    help="svg flame graph, or txt: raw collapsed stacks to aggregate")
    ap.add_argument("--output", type=Path, help="results file (default bench/results/pods-<time>.json)")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (logs) after the run")
    ap.add_argument("--no-swarm", action="store_true", help="skip the Docker Swarm side by side")
    ap.add_argument("--no-docker", action="store_true", help="skip Bosun's docker driver side by side")
    ap.add_argument("--swarm-sizes", help="replicas per Swarm step (default: the pod sizes, plus 50 "
                    "(issue 5's Swarm figure) unless --quick)")
    ap.add_argument("--stop", action="store_true",
                    help="only the stop benchmark: Ctrl-C with N pods ignoring SIGTERM, SIGKILL then adoption")
    ap.add_argument("--stop-pods", type=int, default=100, help="pods of the stop benchmark")
    ap.add_argument("--stop-grace", type=int, default=30, help="their terminationGracePeriodSeconds")
    ap.add_argument("--stop-runs", type=int, default=3, help="runs of the stop benchmark (medians quoted)")
    args = ap.parse_args(argv)
    for v in args.variants.split(","):
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    return args


def swarm_sizes(args: argparse.Namespace, sizes: list[int]) -> list[int]:
    if args.swarm_sizes:
        return [int(x) for x in args.swarm_sizes.split(",")]
    return sorted(set(sizes) | (set() if args.quick else {50}))


def side_by_side(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Bosun's plain pods (a bridge network and `sleep 3600`, as a Swarm task gets) against
    Swarm's replicas, per size both ran; ratio = Swarm's all-Running time over Bosun's."""
    swarm = {s["replicas"]: s for s in (result.get("docker_swarm") or {}).get("steps", [])}
    docker = {s["pods"]: s for s in (result.get("docker_driver") or {}).get("steps", [])}
    steps = result.get("steps", [])
    variant = "plain" if any(s["variant"] == "plain" for s in steps) else (steps[0]["variant"] if steps else "")
    rows = []
    empty = {"all_running_s": None, "create_to_running": {"p50_ms": "-", "p99_ms": "-"}}
    for b in [s for s in steps if s["variant"] == variant and (s["pods"] in swarm or s["pods"] in docker)]:
        w = swarm.get(b["pods"], empty)
        d = docker.get(b["pods"], empty)
        ratio = (round(w["all_running_s"] / b["all_running_s"], 2)
                 if w["all_running_s"] and b["all_running_s"] else None)
        rows.append({"pods": b["pods"], "bosun_variant": variant,
                     "bosun_all_running_s": b["all_running_s"], "swarm_all_running_s": w["all_running_s"],
                     "docker_driver_all_running_s": d["all_running_s"],
                     "docker_driver_running_p50_ms": d["create_to_running"]["p50_ms"],
                     "docker_driver_running_p99_ms": d["create_to_running"]["p99_ms"],
                     "ratio": ratio,
                     "bosun_running_p50_ms": b["create_to_running"]["p50_ms"],
                     "bosun_running_p99_ms": b["create_to_running"]["p99_ms"],
                     "swarm_running_p50_ms": w["create_to_running"]["p50_ms"],
                     "swarm_running_p99_ms": w["create_to_running"]["p99_ms"]})
    return rows


async def wait_no_containers(up: BosunUp, wait_s: float = 60) -> float:
    """After a step's pods are gone from the API, their shims must be gone too before the
    next step, or the next step's memory and latency would include the previous one's stops."""
    t0 = time.perf_counter()
    sandboxes = up.data_dir / "agent" / "runtime" / "oci" / "sandboxes"  # their network teardown too
    while memory_breakdown(up.pid)["shims"]["processes"] or (sandboxes.is_dir() and any(sandboxes.iterdir())):
        if time.perf_counter() - t0 > wait_s:
            break
        await asyncio.sleep(0.2)
    return round(time.perf_counter() - t0, 3)


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    return start_py_spy(pid, out, 200, *(["--format", "raw"] if out.suffix == ".txt" else []))


async def run_steps(up: BosunUp, args: argparse.Namespace, sizes: list[int], result: dict[str, Any]) -> None:
    client = Client.from_kubeconfig(up.kubeconfig)
    try:
        result["node_ready_after_up_s"] = await wait_node_ready(client, up.node_name)
        await asyncio.sleep(3)  # startup garbage and first heartbeats settle
        result["memory_idle"] = memory_breakdown(up.pid)
        steps: list[dict[str, Any]] = []
        result["steps"] = steps
        variants = [v for v in args.variants.split(",") if v]
        for n in sizes:
            for variant in variants:
                ns = f"podbench-{n}-{variant}"
                spy = None
                if args.profile and n == max(sizes) and variant == variants[0]:
                    spy = start_profile(up.pid, args.profile / f"pods-{n}-{variant}.{args.profile_format}")
                cpu0, node0 = cpu_seconds(up.pid), tree_cpu_seconds(up.pid)
                kinds0, busy0 = cpu_by_kind(up.pid), machine_busy_seconds()
                try:
                    step = await run_pods(client, ns, n, variant, data_dir=up.data_dir)
                finally:
                    if spy is not None:
                        stop_profile(spy)
                step["variant"] = variant
                step["bosun_cpu_s"] = round(cpu_seconds(up.pid) - cpu0, 2)
                step["node_cpu_s"] = round(tree_cpu_seconds(up.pid) - node0, 2)
                kinds1 = cpu_by_kind(up.pid)
                busy1 = machine_busy_seconds()
                step["machine_cpu_s"] = round(busy1[0] - busy0[0], 2)
                step["stolen_cpu_s"] = round(busy1[1] - busy0[1], 2)
                step["cpu_ms_per_pod"] = {k: round((kinds1[k] - kinds0[k]) * 1000 / n, 1) for k in kinds1}
                if n == max(sizes) and variant == variants[0]:
                    await asyncio.sleep(2)
                    result[f"memory_{n}_pods"] = memory_breakdown(up.pid)
                step["delete_s"] = await delete_pods(client, ns)
                step["containers_gone_s"] = await wait_no_containers(up)
                await client.delete(NAMESPACES, ns)
                steps.append(step)
                print(_step_line(step), flush=True)
    finally:
        await client.close()


def _step_line(s: dict[str, Any]) -> str:
    r, d = s["create_to_running"], s["create_to_ready"]
    return (f"{s['pods']:>5} {s['variant']:<6} ready {s['ready']:>3}/{s['pods']:<3} "
            f"all Running {s['all_running_s'] or '-':>7} s  all Ready {s['all_ready_s'] or '-':>7} s  "
            f"running p50 {r['p50_ms']:>7} p99 {r['p99_ms']:>7} ms  ready p50 {d['p50_ms']:>7} "
            f"p99 {d['p99_ms']:>7} ms  bosun cpu {s['bosun_cpu_s']} s  node cpu {s.get('node_cpu_s', '-')} s\n"
            f"      machine cpu {s.get('machine_cpu_s', '-')} s (stolen {s.get('stolen_cpu_s', '-')} s); cpu ms/pod: "
            + "  ".join(f"{k} {v}" for k, v in (s.get("cpu_ms_per_pod") or {}).items()))


def _mem_line(label: str, m: dict[str, Any]) -> str:
    parts = [f"{k} {v['rss_mb']} MB RSS / {v['pss_mb']} MB PSS ({v['processes']} proc)"
             for k, v in m.items() if k in ("bosun", "zygote", "shims", "runtime", "containers")]
    return f"{label}: " + "; ".join(parts)


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    big = [s for s in result.get("steps", []) if s["pods"] >= 100]
    if big:
        worst = max((s["all_running_s"] or float("inf")) for s in big)
        out["100_pods_running_s"] = {"value": worst, "target": TARGETS["all_running_100_s"],
                                     "met": worst < TARGETS["all_running_100_s"]}
    for row in result.get("side_by_side", []):
        if row["ratio"] is not None:
            out[f"swarm_ratio_{row['pods']}_pods"] = {"value": row["ratio"], "target": TARGETS["swarm_ratio"],
                                                      "met": row["ratio"] >= TARGETS["swarm_ratio"]}
    p99 = max((s["create_to_ready"]["p99_ms"] for s in result.get("steps", [])), default=None)
    if p99 is not None:
        out["p99_create_to_ready_ms"] = {"value": p99, "target": TARGETS["p99_ready_ms"],
                                         "met": p99 < TARGETS["p99_ready_ms"]}
    for key in [k for k in result if k.startswith("memory_")]:
        rss = result[key]["bosun"]["rss_mb"]
        out[f"{key}_bosun_rss_mb"] = {"value": rss, "target": TARGETS["rss_mb"], "met": rss < TARGETS["rss_mb"]}
        all_pss = sum(result[key].get(k, {}).get("pss_mb", 0) for k in ("bosun", "zygote", "shims", "runtime"))
        out[f"{key}_bosun_shims_runtime_pss_mb"] = {"value": round(all_pss, 1), "target": TARGETS["rss_mb"],
                                                    "met": all_pss < TARGETS["rss_mb"]}
    return out


def print_report(result: dict[str, Any]) -> None:
    print()
    for key in [k for k in result if k.startswith("memory_")]:
        print(_mem_line(key, result[key]))
    print_side_by_side(result)
    for name, v in result["verdict"].items():
        sense = ">=" if name.startswith("swarm_ratio") else "<"
        print(f"  {name}: {v['value']} (target {sense} {v['target']}) {'OK' if v['met'] else 'MISSED'}")
    print(f"cleanup: bosun up exit {result['cleanup']['exit_code']}, leftover processes "
          f"{len(result['cleanup']['leftover_processes'])}, runtime containers "
          f"{len(result['cleanup']['runtime_containers'])}")
    sw = (result.get("docker_swarm") or {}).get("cleanup")
    if sw:
        print(f"cleanup: dockerd exit {sw['exit_code']}, removed by hand: {len(sw['processes_killed'])} processes, "
              f"{len(sw['unmounted'])} mounts, links {sw['links_removed']}, {len(sw['iptables_removed'])} "
              f"iptables rules/chains, {len(sw['host_paths_removed'])} host paths")
    la = result.get("load_average") or {}
    print(f"load average (1 min): start {la.get('start')}, before Swarm {la.get('before_swarm')}, "
          f"end {la.get('end')} (the two sides share 2 cores with whatever else runs)")


def print_side_by_side(result: dict[str, Any]) -> None:
    swarm = result.get("docker_swarm") or {}
    if "skipped" in swarm or "error" in swarm:
        print(f"Docker Swarm: {swarm.get('skipped') or swarm.get('error')}")
    rows = result.get("side_by_side") or []
    if not rows:
        return
    print(f"\nside by side, all Running (Bosun {rows[0]['bosun_variant']} pods on the oci and docker drivers vs "
          f"Docker Swarm {swarm.get('engine_version')} replicas, same machine, one after the other):")
    print(f"{'pods':>5} {'oci s':>9} {'docker s':>9} {'swarm s':>9} {'swarm/oci':>10}   {'p50/p99 ms oci':>18} "
          f"{'p50/p99 ms docker':>18} {'p50/p99 ms swarm':>18}")
    for r in rows:
        print(f"{r['pods']:>5} {r['bosun_all_running_s'] or '-':>9} {r['docker_driver_all_running_s'] or '-':>9} "
              f"{r['swarm_all_running_s'] or '-':>9} {r['ratio'] or '-':>10}   "
              f"{r['bosun_running_p50_ms']:>8}/{r['bosun_running_p99_ms']:<9} "
              f"{r['docker_driver_running_p50_ms']:>8}/{r['docker_driver_running_p99_ms']:<9} "
              f"{r['swarm_running_p50_ms']:>8}/{r['swarm_running_p99_ms']:<9}")
    only = [s for s in swarm.get("steps", []) if s["replicas"] not in {r["pods"] for r in rows}]
    for s in only:
        print(f"{s['replicas']:>5} {'':>9} {s['all_running_s'] or '-':>9}   (Swarm only)")
    if "memory" in (swarm.get("steps") or [{}])[-1]:
        print(f"Docker engine RSS: idle {swarm['memory_idle']['rss_mb']} MB, with "
              f"{swarm['steps'][-1]['replicas']} replicas {swarm['steps'][-1]['memory']['rss_mb']} MB "
              f"({swarm['steps'][-1]['memory']['processes']} processes)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/pods.py needs root (the oci driver runs runc/crun and sets up netns/cgroups)")
        return 2
    if args.stop:
        return stop_main(args)
    sizes = [int(x) for x in (args.sizes or ("1,10" if args.quick else "1,10,100")).split(",")]
    result: dict[str, Any] = {
        "benchmark": "pods", "quick": args.quick, "sizes": sizes,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT, check=False).stdout.strip(),
        "targets": TARGETS,
    }
    load_at_start = round(os.getloadavg()[0], 2)  # 1-minute: another benchmark or test suite shows here
    data_dir = Path(tempfile.mkdtemp(prefix="bosun-podbench-"))
    up = start_bosun_up(data_dir, node_name=f"podbench-{os.getpid()}")
    result["runtime"] = _runtime_of()
    try:
        asyncio.run(run_steps(up, args, sizes, result))
    finally:
        code = up.stop()
        time.sleep(0.5)
        result["cleanup"] = {"exit_code": code, "leftover_processes": leftovers(data_dir),
                             "runtime_containers": runtime_state_leftovers(data_dir),
                             "mounts_left": _mounts_under(data_dir)}
        if not args.keep and not result["cleanup"]["mounts_left"]:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            result["data_dir"] = str(data_dir)
    result["load_average"] = {"start": load_at_start, "before_swarm": round(os.getloadavg()[0], 2)}
    if args.no_docker:
        result["docker_driver"] = {"skipped": "--no-docker"}
    else:
        print(f"\nBosun on its docker driver, the same workload ({', '.join(map(str, sizes))} pods):", flush=True)
        result["docker_driver"] = asyncio.run(run_docker_driver(sizes))
        if "skipped" in result["docker_driver"] or "error" in result["docker_driver"]:
            print(f"docker driver: {result['docker_driver'].get('skipped') or result['docker_driver'].get('error')}")
    if args.no_swarm:
        result["docker_swarm"] = {"skipped": "--no-swarm"}
    else:
        print(f"\nDocker Swarm, the same workload ({', '.join(map(str, swarm_sizes(args, sizes)))} replicas):",
              flush=True)
        result["docker_swarm"] = asyncio.run(run_swarm(swarm_sizes(args, sizes)))
    result["load_average"]["end"] = round(os.getloadavg()[0], 2)
    result["side_by_side"] = side_by_side(result)
    result["verdict"] = verdict(result)
    print_report(result)
    out = args.output or RESULTS / f"pods-{'quick-' if args.quick else ''}" \
        f"{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {out}")
    return 0


def stop_main(args: argparse.Namespace) -> int:
    """The stop and adoption figures (bench/_pods_stop.py), in a results file of their own."""
    result: dict[str, Any] = {"benchmark": "pods-stop", **results_header(args, "alone on the machine but for "
                                                                           "other sessions' work; see load")}
    print(f"loop speed {result['machine']['loop_mops']} M/s; {args.stop_runs} runs of {args.stop_pods} pods, "
          f"grace {args.stop_grace} s", flush=True)
    load = round(os.getloadavg()[0], 2)
    result.update(stop_bench(args.stop_runs, args.stop_pods, args.stop_grace))
    result["load_average"] = {"start": load, "end": round(os.getloadavg()[0], 2)}
    print_stop(result)
    out = args.output or RESULTS / f"pods-stop-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    write_result(result, out)
    return 0


def _runtime_of() -> str:
    """Which OCI runtime the driver picked, from the driver itself (crun refuses hybrid cgroups)."""
    from bosun.agent.runtime.oci import pick_runtime

    return pick_runtime("auto")


def _mounts_under(path: Path) -> list[str]:
    """Mounts left under the data dir: removing the tree through a bind mount of the host's
    /usr would be a disaster, so the tree is kept instead and the mounts reported."""
    prefix = str(path)
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(prefix)]


if __name__ == "__main__":
    sys.exit(main())
