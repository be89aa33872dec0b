"""API server benchmark: verbs, watch fan-out and SQLite growth under churn, per store.

    .venv/bin/python bench/api.py [--quick] [--store sqlite|etcd|both] [--clients 1,10,50]
                                  [--api-workers 1,2] [--worker-runs 3] [--workers-only]
    .venv/bin/python bench/api.py --store sqlite --clients "" --list-pods 10000 --listers 16 \
        --watch-rates "" --churn 0 --api-workers ""   # only the list load: 16 clients, 10,000 pods
    .venv/bin/python bench/api.py --store sqlite --clients "" --watch-rates 200 --churn 0 \
        --api-workers ""   # only the watch target: 100 watchers, 200 writes/s
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python bench/api.py ...   # measure that bosun

The server (`bosun server`, HTTPS, its own process) and this load generator (N clients, each
its own aiohttp pool) share the machine's cores, so throughput is a whole-box number; the
server's own CPU per operation is reported next to it (all its processes: with --api-workers
the workers too). The verbs, watch and churn phases run one API process; then pod creates with
the largest client count are measured for each --api-workers count side by side (fresh server
each, counts alternating, medians of --worker-runs runs). The fan-out's watchers run in
--watch-procs processes of their own (default 4; 0 = in the writers' process, as before
2026-12-07, when reading 100 streams in the writers' event loop delayed the writes and the
arrival stamps: the load generator, not the server, set the figure). Prints a table and writes
bench/results/api-<store>-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _churn import run_churn
from _cli import results_header, run_async, write_result
from _common import CpuMeter, close_clients, open_clients
from _listload import open_listers, run_list_load, seed_into
from _procs import ETCD, Etcd, remove_tree, start_etcd, start_server
from _report import print_report
from _throughput import run_throughput
from _watch import run_watch
from _workers import run_workers

RESULTS = Path(__file__).resolve().parent / "results"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts (well under 2 minutes)")
    ap.add_argument("--store", choices=("sqlite", "etcd", "both"), default="both")
    ap.add_argument("--clients", type=_ints, default=[1, 10, 50], help="concurrent clients, e.g. 1,10,50")
    ap.add_argument("--pods", type=int, default=1000, help="pods created (and listed) per client count")
    ap.add_argument("--updates", type=int, help="updates per client count (default 3000, quick 1000)")
    ap.add_argument("--gets", type=int, help="gets per client count (default 3000, quick 1000)")
    ap.add_argument("--lists", type=int, help="full lists per client count (default 50, quick 10)")
    ap.add_argument("--list-pods", type=int, default=0,
                    help="list load: pods written before the server starts (sqlite; 0 = no list load)")
    ap.add_argument("--listers", type=int, default=16, help="list load: concurrent listers")
    ap.add_argument("--list-rounds", type=int, default=2, help="list load: lists per lister")
    ap.add_argument("--list-seed", metavar="DIR", help="list load: copy the pods' store from DIR (written there "
                    "first if DIR has none), so that alternating runs list the same objects")
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--watch-procs", type=int, default=4,
                    help="processes the watchers are spread over (0: the writers' own; its event loop "
                    "then also reads every stream, and delays the writes and the arrival stamps)")
    ap.add_argument("--watch-rates", type=_floats, help="writes/s during fan-out (default 50,200; quick 100)")
    ap.add_argument("--watch-seconds", type=float, help="seconds per watch rate (default 10, quick 5)")
    ap.add_argument("--churn", type=int, help="SQLite churn updates (default 200000, quick 10000)")
    ap.add_argument("--churn-every", type=int, help="updates between samples (default 20000, quick 2000)")
    ap.add_argument("--churn-clients", type=int, default=50)
    ap.add_argument("--api-workers", type=_ints, default=[1, 2], help="API process counts compared, e.g. 1,2")
    ap.add_argument("--worker-runs", type=int, default=3, help="runs per --api-workers count (medians quoted)")
    ap.add_argument("--workers-only", action="store_true", help="only the --api-workers comparison")
    ap.add_argument("--controllers", default="none", help="passed to `bosun server --controllers`")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the server during each phase into DIR")
    ap.add_argument("--output", metavar="PATH", help="results file (default bench/results/api-<store>-<time>.json)")
    ap.add_argument("--no-write", action="store_true", help="do not write a results file")
    args = ap.parse_args(argv)
    q = args.quick
    defaults: dict[str, Any] = {
        "updates": 1000 if q else 3000, "gets": 1000 if q else 3000, "lists": 10 if q else 50,
        "watch_rates": [100.0] if q else [50.0, 200.0], "watch_seconds": 5.0 if q else 10.0,
        "churn": 10_000 if q else 200_000, "churn_every": 2000 if q else 20_000,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


async def bench_store(store: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start etcd (if asked) and a server, run every phase, stop them, whatever happens."""
    etcd: Etcd | None = None
    store_url = ""
    if store == "etcd":
        etcd = start_etcd(tmp / "etcd")
        store_url = f"etcd://{etcd.endpoint}"
    out: dict[str, Any] = {"store": store, "throughput": {}, "watch": []}
    try:
        if not args.workers_only:
            await _phases(store, store_url, etcd.proc.pid if etcd is not None else None, args, tmp, out)
        if args.api_workers:
            out["workers"] = await run_workers(store, store_url, args.api_workers, args.worker_runs,
                                               max(args.clients, default=50), args.pods, args.controllers, tmp)
    finally:
        if etcd is not None:
            etcd.stop()
    return out


async def _phases(store: str, store_url: str, etcd_pid: int | None, args: argparse.Namespace, tmp: Path,
                  out: dict[str, Any]) -> None:
    """Verbs, watch fan-out and (SQLite) churn against one server with one API process."""
    data_dir = tmp / f"server-{store}"
    if args.list_pods and store == "sqlite":
        print(f"[{store}] writing {args.list_pods} pods for the list load ...", file=sys.stderr, flush=True)
        await seed_into(data_dir, args.list_pods, Path(args.list_seed) if args.list_seed else None)
    # A server opening a store of many pods takes longer to be ready on a busy machine.
    server = start_server(data_dir, store_url, args.controllers, timeout=300 if args.list_pods else 60)
    out["server_pid"] = server.pid
    try:
        meter = CpuMeter(server, Path(args.profile) if args.profile else None, etcd_pid)
        for n in args.clients:
            print(f"[{store}] verbs with {n} clients ...", file=sys.stderr, flush=True)
            clients = await open_clients(server, n)
            try:
                out["throughput"][str(n)] = await run_throughput(
                    clients, meter, f"bench-n{n}", args.pods, args.updates, args.gets, args.lists,
                    store,
                )
            finally:
                await close_clients(clients)
        if args.list_pods and store == "sqlite":
            print(f"[{store}] {args.listers} listers x {args.list_rounds} lists of {args.list_pods} pods ...",
                  file=sys.stderr, flush=True)
            listers = await open_listers(server, args.listers)
            try:
                out["list_load"] = await run_list_load(listers, meter, args.list_pods, args.list_rounds, store)
            finally:
                await close_clients(listers)
        for i, rate in enumerate(args.watch_rates):
            where = f"{args.watch_procs} processes" if args.watch_procs else "the writers' process"
            print(f"[{store}] watch fan-out, {args.watchers} watchers in {where}, {rate:g} writes/s ...",
                  file=sys.stderr, flush=True)
            writers = await open_clients(server, 8)
            try:
                out["watch"].append(await run_watch(
                    server, args.watchers, args.watch_procs, writers, meter, f"bench-watch-{i}", rate,
                    args.watch_seconds, label=store,
                ))
            finally:
                await close_clients(writers)
        if store == "sqlite" and args.churn > 0:
            print(f"[{store}] churn: {args.churn} updates of {args.pods} pods ...", file=sys.stderr, flush=True)
            clients = await open_clients(server, args.churn_clients)
            try:
                out["churn"] = await run_churn(
                    clients, data_dir, "bench-churn", args.pods, args.churn, args.churn_every,
                )
            finally:
                await close_clients(clients)
    finally:
        server.stop()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    stores = ["sqlite", "etcd"] if args.store == "both" else [args.store]
    result = results_header(args, "server and load generator share these CPUs; etcd and SQLite data on the same disk",
                            hidden=("no_write", "profile", "output", "list_seed"))
    result["stores"] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bosun-bench-api-"))
    try:
        for store in stores:
            result["stores"][store] = await bench_store(store, args, tmp)
    finally:
        remove_tree(tmp)
    return result


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.store != "sqlite" and not Path(ETCD).exists():
        raise SystemExit(f"{ETCD} is not installed (apt-get install etcd-server)")
    result = run_async(main(args))
    print_report(result)
    if not args.no_write:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        write_result(result, Path(args.output) if args.output else RESULTS / f"api-{args.store}-{stamp}.json")


if __name__ == "__main__":
    run()
