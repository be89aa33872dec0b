"""Watch cache: CPU per pod event that this process did not write, and per pod loaded at start.

With ``--api-workers`` every API process keeps its own watch cache, fed by the one store
watch: each create one process answers is an event every other process takes in without the
object it wrote (an agent's status write is one for every process). The same holds for each
pod a starting server loads. This measures, in one process on a real SQLite store, what the
cache adds to such writes (creates of ``--pods`` unscheduled bench pods straight to the store,
with a cache running, minus the same creates without one) and what a cache's start costs per
pod, for ``--rounds`` rounds (a fresh store each); medians are quoted.

    .venv/bin/python bench/watch_ingest.py [--pods 2000] [--rounds 5] [--output PATH] [--no-write]

It imports bosun from the interpreter that runs it, so one copy compares two trees: run it
with each tree's virtualenv (the results name the tree they measured).
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

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bosun
from _cli import results_header, run_async, text_table, write_result
from _pods import make_pod
from bosun.api.registry import must_by_plural
from bosun.api.watchcache import WatchCache
from bosun.store.sqlite import SQLiteStore

RESULTS = Path(__file__).resolve().parent / "results"
MEASURED = str(Path(bosun.__file__).resolve().parent)  # the tree whose code runs
PODS = must_by_plural("", "v1", "pods")
CONCURRENT = 50  # creates in flight at once, as the API bench's clients keep them


async def _create(store: SQLiteStore, prefix: str, pods: int) -> int:
    """``pods`` bench pods created straight in the store; the last revision."""
    values = [(PODS.key("bench", f"{prefix}-{i:05d}"), orjson.dumps(make_pod(f"{prefix}-{i:05d}", "bench", i)))
              for i in range(pods)]
    last = 0
    for start in range(0, pods, CONCURRENT):
        revs = await asyncio.gather(*(store.create(k, v) for k, v in values[start:start + CONCURRENT]))
        last = max(last, *revs)
    return last


async def one_round(tmp: Path, pods: int, i: int) -> dict[str, float]:
    store = await SQLiteStore.open(tmp / f"round-{i}.db", compact_interval=0)
    try:
        c0 = time.process_time()
        await _create(store, "bare", pods)
        bare = time.process_time() - c0
        cache = WatchCache(store)
        await cache.start()
        try:
            c0 = time.process_time()
            await cache.wait_for(await _create(store, "cached", pods))
            cached = time.process_time() - c0
        finally:
            await cache.stop()
        c0 = time.process_time()
        loaded = WatchCache(store)
        await loaded.start()
        load = time.process_time() - c0
        await loaded.stop()
    finally:
        await store.close()
    return {"ingest_us_per_event": (cached - bare) / pods * 1e6, "load_us_per_pod": load / (2 * pods) * 1e6,
            "write_us_per_create": bare / pods * 1e6}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    result = results_header(args, "store writer thread and the cache share this process", hidden=("no_write", "output"))
    result["bosun"] = MEASURED
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bosun-bench-ingest-") as tmp:
        for i in range(args.rounds):
            rounds.append(await one_round(Path(tmp), args.pods, i))
    result["rounds"] = rounds
    result["median"] = {k: round(statistics.median(r[k] for r in rounds), 1) for k in rounds[0]}
    return result


def run(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--output", metavar="PATH")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    result = run_async(main(args))
    print(f"bosun from {result['bosun']}; loop speed {result['machine']['loop_mops']} Mops/s; "
          f"{args.pods} unscheduled pods per round, CPU of the whole process\n")
    keys = list(result["median"])
    rows = [[str(i + 1), *(f"{r[k]:.1f}" for k in keys)] for i, r in enumerate(result["rounds"])]
    rows.append(["median", *(f"{result['median'][k]:.1f}" for k in keys)])
    print(text_table(["round", "cache us/event", "load us/pod", "write us/create"], rows))
    if not args.no_write:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        write_result(result, Path(args.output) if args.output else RESULTS / f"watch-ingest-{stamp}.json")


if __name__ == "__main__":
    run()
