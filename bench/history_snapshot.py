"""How long writing the metrics history's snapshot stops the API server's event loop.

    .venv/bin/python bench/history_snapshot.py [--series 71000] [--runs 3] [--baseline PYTHON]

A history of ``--series`` full rings (71,000 one-hour rings at 10 s: the ~98 MiB of 10,000
pods, bench/metrics.py) is saved with :meth:`Snapshots.save`, as the server does every
``snapshot_interval`` (each tree's periodic call), while a task on the same loop wakes every millisecond and records how
late it was: the longest of those gaps is the pause every request of the server saw. With
``--baseline PYTHON`` (another tree's virtualenv, e.g. main's) the runs alternate between
that tree's code and this one, each in a fresh process. Target: no pause over 50 ms (what a
request may be kept waiting on a busy server without anyone noticing); the table shows medians.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from _cli import results_header, run_async, text_table, write_result

RESULTS = Path(__file__).resolve().parent / "results"
STALL_TARGET_MS = 50.0


async def _measure(series: int) -> dict[str, Any]:
    import bosun
    from bosun.monitoring.history import HistoryConfig, MetricsHistory
    from bosun.monitoring.snapshot import FILENAME, Snapshots

    history = MetricsHistory(HistoryConfig())
    now = time.time()
    last = history.slot(now)
    ring = array("f", [float(i % 97) for i in range(history.capacity)])
    for i in range(series):
        history.restore("pod_cpu_usage_cores", {"namespace": f"ns-{i % 10}", "pod": f"p-{i}", "node": f"n-{i % 1000}"},
                        last, array("f", ring))
    gaps: list[float] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            gaps.append(time.perf_counter() - t0 - 0.001)

    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        snapshots = Snapshots(history, Path(tmp) / FILENAME, 0.0)
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        gaps.clear()
        # What the server's periodic writer calls: this tree's save(expire=False) (the expiry is
        # the collector's), a tree without that parameter's save() (which expires first).
        periodic = {"expire": False} if "expire" in inspect.signature(Snapshots.save).parameters else {}
        t0 = time.perf_counter()
        size = await snapshots.save(**periodic)
        took = time.perf_counter() - t0
        stop = True
        await task
    gaps.sort()
    return {"tree": str(Path(bosun.__file__).parents[2]), "series": series, "bytes": size, "save_s": took,
            "max_stall_ms": gaps[-1] * 1000, "p99_gap_ms": gaps[int(len(gaps) * 0.99)] * 1000, "ticks": len(gaps)}


def _child(python: str, series: int) -> dict[str, Any]:
    out = subprocess.run([python, __file__, "--child", "--series", str(series)], capture_output=True, text=True,
                         timeout=600, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=71_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", metavar="PYTHON", help="alternate with this interpreter's tree")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--note", default="")
    ap.add_argument("--output", metavar="PATH")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_async(_measure(args.series))))
        return
    header = results_header(args, args.note, hidden=("no_write", "output", "child"))
    print(f"loop speed {header['machine']['loop_mops']} M iterations/s")
    sides = {"change": sys.executable, **({"baseline": args.baseline} if args.baseline else {})}
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for r in range(args.runs):
        for side in sorted(sides):  # baseline first, then the change
            runs[side].append(_child(sides[side], args.series))
            print(f"{side} run {r + 1}: {runs[side][-1]}")
    rows = []
    for side in sorted(sides):
        stall = statistics.median(x["max_stall_ms"] for x in runs[side])
        rows.append([side, f"{statistics.median(x['bytes'] for x in runs[side]) / 2**20:.0f} MiB",
                     f"{statistics.median(x['save_s'] for x in runs[side]):.2f} s",
                     f"{statistics.median(x['p99_gap_ms'] for x in runs[side]):.1f} ms", f"{stall:.1f} ms",
                     f"< {STALL_TARGET_MS:.0f} ms", "met" if stall < STALL_TARGET_MS else "MISSED"])
    print()
    print(text_table([f"tree (median of {args.runs})", "snapshot", "save", "p99 loop gap", "longest pause",
                      "target", "verdict"], rows))
    if not args.no_write:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        write_result({**header, "runs": runs}, Path(args.output) if args.output
                     else RESULTS / f"history-snapshot-{stamp}.json")


if __name__ == "__main__":
    main()
