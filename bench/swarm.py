"""Bosun and Docker Swarm side by side, the Swarm front end's operations timed in one run.

    sudo .venv/bin/python bench/swarm.py [--no-docker] [--replicas 50] [--scale 100]

For each system, with its own CLI as a user types it, timed from the command's start until
the system's API shows the result (polled every POLL_S from this process):

- ``service create -d --replicas 50`` until 50 tasks run;
- ``service scale -d NAME=100`` until 100 tasks run;
- one task's process killed (SIGKILL) until it is replaced and 100 tasks run again;
- ``service update -d --update-parallelism 10 --update-delay 0s --env-add`` until all 100
  tasks run the new spec;
- ``stack deploy`` of a 5-service stack (2 tasks each) until every service converged.

Bosun's sources are compiled to bytecode first (as an install does; see compile_bytecode).
Bosun runs as `bosun up --runtime oci` (real crun containers of the ``host`` image: the
machine's busybox); Docker as a private dockerd of Debian's docker.io (installed with apt when
missing) inside a network namespace of its own (its iptables rules and bridges stay there),
after `swarm init`, with a busybox image imported locally (the machine reaches no image
registry; tests/integration/oci_images.py builds its images the same way). One runs after the
other, never both at once. Prints the table with the ratios (target: Bosun at least 3x faster
on each) and writes bench/results/swarm-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli import loop_speed, results_header, run_async, text_table, write_result
from _pods_procs import start_bosun_up
from _profile import start_profile, stop_profile
from _swarm import SwarmUnavailable, prepare, start_engine, stop_engine, why_not
from _swarm_sides import Bosun, CommandFailed, Docker, Side, bosun_pods_gone, cleanup_cli, stack_file
from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import Client

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent
TARGET_RATIO = 3.0
POLL_S = 0.1
LIMIT_S = 300.0
NETNS = "bosun-bench-docker"
STEPS = ("create", "scale", "replace", "update", "stack")
SERVICE, STACK = "bench", "benchstack"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=50)
    ap.add_argument("--scale", type=int, default=100)
    ap.add_argument("--no-docker", action="store_true", help="measure Bosun's side only")
    ap.add_argument("--no-bosun", action="store_true", help="measure Docker's side only")
    ap.add_argument("--tree", type=Path, help="run Bosun from this other checkout (with its own .venv): "
                    "`bosun up` and the CLI, for a baseline measured in the same command")
    ap.add_argument("--baseline", type=Path, help="also measure Bosun from this other checkout (with its own "
                    ".venv) in each run, before or after this one (alternating), and report both ratios")
    ap.add_argument("--runs", type=int, default=1, help="runs (each with its own Docker figures); medians reported")
    ap.add_argument("--profile", type=Path, help="py-spy `bosun up` (with its subprocesses) into this "
                    "file (collapsed stacks, py-spy --format raw) while the Bosun steps run")
    ap.add_argument("--output", type=Path)
    return ap.parse_args(argv)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {LIMIT_S:g} s")
        await asyncio.sleep(POLL_S)


async def timed(action: Callable[[], Awaitable[Any]], check: Callable[[], Awaitable[bool]], what: str) -> float:
    t0 = time.perf_counter()
    await action()
    await until(check, what)
    return round(time.perf_counter() - t0, 3)


async def run_steps(side: Side, args: argparse.Namespace, work: Path) -> dict[str, float]:
    """The five operations on one system, in order (each starts from where the last left it)."""
    n, m = args.replicas, args.scale
    docker = isinstance(side, Docker)
    resolve = ["--no-resolve-image"] if docker else []
    out: dict[str, float] = {}

    async def count(want: int) -> bool:
        return await side.running(SERVICE) >= want

    # The same short stop grace on both: `sleep` as a container's PID 1 ignores SIGTERM, so each
    # replaced task would otherwise wait out the default grace (10 s on both systems).
    out["create"] = await timed(lambda: side.cli("service", "create", "-d", *resolve, "--name", SERVICE,
                                                 "--stop-grace-period", "1s", "--replicas", str(n), *side.image),
                                lambda: count(n), f"{side.name}: {n} tasks")
    out["scale"] = await timed(lambda: side.cli("service", "scale", "-d", f"{SERVICE}={m}"),
                               lambda: count(m), f"{side.name}: {m} tasks")
    t0 = time.perf_counter()
    token = await side.kill_one(SERVICE)
    await until(lambda: side.replaced(SERVICE, token, m), f"{side.name}: killed task replaced")
    out["replace"] = round(time.perf_counter() - t0, 3)
    out["update"] = await timed(lambda: side.cli("service", "update", "-d", *resolve, "--update-parallelism", "10",
                                                 "--update-delay", "0s", "--env-add", "BENCH=1", SERVICE),
                                lambda: count(m), f"{side.name}: rolling update of {m} tasks")
    path = stack_file(work / f"stack-{side.name.split()[0]}.json", side.image)
    stack_cmd = ["stack", "deploy", "--resolve-image", "never"] if docker else ["stack", "deploy"]

    async def stack_converged() -> bool:
        return all([await side.running(f"s{i}", STACK) >= 2 for i in range(1, 6)])

    out["stack"] = await timed(lambda: side.cli(*stack_cmd, "-c", str(path), STACK), stack_converged,
                               f"{side.name}: 5-service stack")
    return out


def compile_bytecode(tree: Path | None) -> str:
    """Each CLI command is a new Python process: where bytecode cannot be written
    (PYTHONDONTWRITEBYTECODE, as on the machines these runs are made on) every command would
    compile Bosun's ~250 modules anew, which no installed copy does (pip compiles on install).
    So the tree's sources are compiled once here, for either checkout alike."""
    python = str(tree / ".venv" / "bin" / "python") if tree else sys.executable
    res = subprocess.run([python, "-m", "compileall", "-q", str((tree or ROOT) / "src")], capture_output=True,
                         check=False, timeout=600)
    return "compiled before the steps" if res.returncode == 0 else f"compileall failed: {res.stderr[-300:]!r}"


async def bosun_side(args: argparse.Namespace, work: Path, tree: Path | None, profile: Path | None) -> dict[str, Any]:
    bytecode = compile_bytecode(tree)
    up = start_bosun_up(work / "bosun", "bench", tree=tree)
    cli = str(tree / ".venv" / "bin" / "bosun") if tree else str(Path(sys.executable).with_name("bosun"))
    result: dict[str, Any] = {"runtime": "oci (crun), image host", "tree": str(tree or ROOT), "commit": commit(tree),
                              "bytecode": bytecode}
    client = Client(load_kubeconfig(up.kubeconfig))
    spy = start_profile(up.pid, profile, 50, "--subprocesses", "--format", "raw") if profile else None
    try:
        result["seconds"] = await run_steps(Bosun(up.kubeconfig, client, cli_path=cli), args, work)
        result["loop_mops"] = loop_speed()
    except (CommandFailed, TimeoutError) as e:
        result["error"] = str(e)
    finally:
        if spy:
            stop_profile(spy)
        for argv in (["service", "rm", SERVICE], ["stack", "rm", STACK]):
            cleanup_cli([cli, "--kubeconfig", up.kubeconfig, *argv])
        result["pods_left"] = await bosun_pods_gone(client, ("default", STACK))
        await client.close()
        result["stop_exit"] = up.stop()
    return result


def commit(tree: Path | None) -> str:
    res = subprocess.run(["git", "-C", str(tree or ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False)
    return res.stdout.strip() or "?"


def ensure_docker() -> str | None:
    """Debian's docker.io, installed when missing; the reason when it cannot be."""
    if why_not() and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "docker.io"], capture_output=True,
                       check=False, timeout=900)
    return why_not()


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, check=False, timeout=30)


async def docker_side(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    reason = ensure_docker()
    if reason:
        return {"skipped": reason}
    ip("netns", "add", NETNS)
    ip("netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
    result: dict[str, Any] = {"dockerd": "Debian docker.io, private root and socket, in network namespace " + NETNS}
    try:
        try:
            engine = await start_engine(NETNS)
        except SwarmUnavailable as e:
            return {"skipped": str(e)}
        try:
            result.update(await prepare(engine))
            result["seconds"] = await run_steps(Docker(engine), args, work)
        except (CommandFailed, SwarmUnavailable, TimeoutError) as e:
            result["error"] = str(e)
            result["dockerd_log"] = engine.log_tail()
        finally:
            result["cleanup"] = await stop_engine(engine)  # services removed, swarm left, dockerd stopped
    finally:
        ip("netns", "delete", NETNS)
    return result


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _ratios(runs: list[dict[str, Any]], side: str, step: str) -> list[float]:
    """Swarm's time over the side's, each from one run (never a ratio across runs)."""
    out = []
    for run in runs:
        b, d = (run.get(side) or {}).get("seconds") or {}, (run.get("docker") or {}).get("seconds") or {}
        if step in b and step in d and b[step]:
            out.append(d[step] / b[step])
    return out


def table(runs: list[dict[str, Any]], baseline: bool) -> tuple[str, dict[str, Any]]:
    """Medians over the runs: seconds of each side, and the ratio (of each run's own figures)."""
    rows, verdicts = [], {}
    sides = ["baseline", "bosun"] if baseline else ["bosun"]
    for step in STEPS:
        secs = {side: _median([r[side]["seconds"][step] for r in runs if (r.get(side) or {}).get("seconds")])
                for side in [*sides, "docker"]}
        ratios = {side: _median(_ratios(runs, side, step)) for side in sides}
        ratio = ratios["bosun"]
        verdict = "-" if ratio is None else ("met" if ratio >= TARGET_RATIO else "MISSED")
        verdicts[step] = {"ratio": ratio, "verdict": verdict, "seconds": secs}
        if baseline:
            base = ratios["baseline"]
            verdicts[step]["baseline_ratio"] = base
            verdicts[step]["baseline_verdict"] = "-" if base is None else ("met" if base >= TARGET_RATIO else "MISSED")
        rows.append([step, *(f"{secs[side] if secs[side] is not None else '-'}" for side in [*sides, "docker"]),
                     *(f"{ratios[side] if ratios[side] is not None else '-'}" for side in sides),
                     f">= {TARGET_RATIO:g}x", verdict])
    head = ["step", *(f"{side} s" for side in sides), "swarm s", *(f"swarm/{side}" for side in sides),
            "target", "verdict"]
    return text_table(head, rows), verdicts


async def one_run(args: argparse.Namespace, work: Path, index: int) -> dict[str, Any]:
    """Both (or all three) systems once, one after the other; with a baseline, which Bosun
    goes first alternates from run to run, so neither always meets the other's leftovers."""
    run: dict[str, Any] = {}
    tree = args.tree.resolve() if args.tree else None
    order: list[tuple[str, Path | None]] = [("bosun", tree)]
    if args.baseline:
        order.insert(index % 2, ("baseline", args.baseline.resolve()))
    for side, side_tree in order:
        run[side] = {"skipped": "--no-bosun"} if args.no_bosun else await bosun_side(
            args, work / side, side_tree, args.profile if side == "bosun" else None)
        print(f"{side} ({run[side].get('commit', '')}): {run[side].get('seconds') or run[side].get('error')}",
              flush=True)
    run["docker"] = {"skipped": "--no-docker"} if args.no_docker else await docker_side(args, work)
    print(f"docker: {run['docker'].get('seconds') or run['docker'].get('skipped') or run['docker']}", flush=True)
    return run


async def main(args: argparse.Namespace) -> dict[str, Any]:
    result = results_header(args, "bosun up and dockerd run one after the other, never together",
                            hidden=("output", "tree", "profile", "baseline"))
    print(f"loop speed: {result['machine']['loop_mops']} M iterations/s", flush=True)
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bosun-swarm-bench-", ignore_cleanup_errors=True) as tmp:
            runs.append(await one_run(args, Path(tmp), i))
    result["runs"] = runs
    result["bosun"], result["docker"] = runs[-1]["bosun"], runs[-1]["docker"]  # the last run, as files before
    if args.baseline:
        result["baseline"] = runs[-1]["baseline"]
    result["loop_mops_after"] = loop_speed()
    text, result["verdicts"] = table(runs, bool(args.baseline))
    print(f"\nmedians of {len(runs)} run(s); loop speed {result['machine']['loop_mops']} M iterations/s before, "
          f"{result['loop_mops_after']} after\n" + text)
    return result


if __name__ == "__main__":
    ns = parse_args()
    res = run_async(main(ns))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    write_result(res, ns.output or RESULTS / f"swarm-{stamp}.json")
