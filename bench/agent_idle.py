"""CPU that `bosun up` spends per minute with N idle pods: what the node agent's per-second
work (relisting containers, waking pod workers) costs when nothing happens.

    sudo .venv/bin/python bench/agent_idle.py [--pods 100] [--seconds 60] [--runs 3] [--baseline TREE]

Each run starts `bosun up --runtime oci` (fresh data dir), creates a service of N tasks
(`sleep 3600` from the ``host`` image) with the Swarm-style CLI, waits until all are ready and
a settle time more, then reads the CPU seconds of `bosun up` and its children (shims, the
zygote) over ``--seconds``; then removes the service and stops `bosun up` with Ctrl-C.
With ``--baseline`` (another checkout with its own .venv, e.g. a detached worktree of main),
runs alternate baseline and this tree, so both see the same machine load; the table gives
the medians and their ratio. Writes bench/results/agent-idle-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli import results_header, run_async, text_table, write_result
from _pods_procs import start_bosun_up
from _procs import tree_cpu_seconds
from _swarm_sides import Bosun, bosun_pods_gone, cleanup_cli
from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client

RESULTS = Path(__file__).resolve().parent / "results"
HERE = Path(__file__).resolve().parent.parent
SERVICE = "idle"
SETTLE_S = 15.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the idle CPU is measured")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another checkout (with .venv) measured alternately")
    ap.add_argument("--output", type=Path)
    return ap.parse_args(argv)


async def one_run(tree: Path | None, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    up = start_bosun_up(work, "idle", tree=tree)
    client = Client(load_kubeconfig(up.kubeconfig))
    side = Bosun(up.kubeconfig, client)
    bosun = str((tree or HERE) / ".venv" / "bin" / "bosun")
    out: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        await side.cli("service", "create", "-d", "--name", SERVICE, "--replicas", str(args.pods), *side.image)
        deadline = time.monotonic() + 300
        while await side.running(SERVICE) < args.pods:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{args.pods} pods not ready within 300 s")
            await asyncio.sleep(0.2)
        out["ready_s"] = round(time.perf_counter() - t0, 2)
        await asyncio.sleep(SETTLE_S)
        c0, w0 = tree_cpu_seconds(up.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        c1, w1 = tree_cpu_seconds(up.pid), time.monotonic()
        out["cpu_s_per_min"] = round(60 * (c1 - c0) / (w1 - w0), 3)
    except (RuntimeError, TimeoutError) as e:
        out["error"] = str(e)
    finally:
        cleanup_cli([bosun, "--kubeconfig", up.kubeconfig, "service", "rm", SERVICE])
        out["pods_left"] = await bosun_pods_gone(client, ("default",))
        await client.close()
        out["stop_exit"] = up.stop()
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    result = results_header(args, "one bosun up at a time; baseline and this tree alternate", hidden=("output",))
    result["params"]["baseline"] = str(args.baseline) if args.baseline else None
    print(f"loop speed: {result['machine']['loop_mops']} M iterations/s", flush=True)
    sides: dict[str, Path | None] = {"this": None}
    if args.baseline:
        sides = {"baseline": args.baseline.resolve(), "this": None}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="bosun-agent-idle-", ignore_cleanup_errors=True) as tmp:
        for i in range(args.runs):
            for name, tree in sides.items():
                r = await one_run(tree, args, Path(tmp) / f"{name}-{i}")
                runs[name].append(r)
                print(f"run {i + 1} {name}: {r}", flush=True)
    result["runs"] = runs
    medians: dict[str, float | None] = {}
    rows = []
    for name, rs in runs.items():
        cpu = [r["cpu_s_per_min"] for r in rs if "cpu_s_per_min" in r]
        medians[name] = round(statistics.median(cpu), 3) if cpu else None
        rows.append([name, str(args.pods), " ".join(f"{c:g}" for c in cpu), f"{medians[name]}"])
    result["median_cpu_s_per_min"] = medians
    base, this = medians.get("baseline"), medians.get("this")
    if base and this:
        result["baseline_over_this"] = round(base / this, 2)
    print("\n" + text_table(["tree", "pods", "CPU s/min per run", "median"], rows))
    if "baseline_over_this" in result:
        print(f"baseline / this: {result['baseline_over_this']}x (no target: lower is better)")
    return result


if __name__ == "__main__":
    ns = parse_args()
    res = run_async(main(ns))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    write_result(res, ns.output or RESULTS / f"agent-idle-{stamp}.json")
