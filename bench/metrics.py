"""Metrics history and autoscaling benchmark (issue 15).

    .venv/bin/python bench/metrics.py [--runs 3] [--nodes 1000] [--pods 10000] [--ticks 360]

1. history (in this process, the API server's own code): ``--ticks`` rounds (default 360:
   one hour at the default 10 s resolution) of Summary API documents for ``--nodes`` nodes and
   ``--pods`` pods in ``--namespaces`` namespaces, through the collector's sample extraction
   into :class:`MetricsHistory`; reports the ingest CPU per 1,000 samples, the rings' bytes and
   the process's RSS growth for that hour, the snapshot's bytes on disk (what a server keeps
   in its data dir to survive a restart) and its write/read time, the p99 of a pod's 1 h
   query and of a namespace's last 5 minutes, both JSON-encoded as the query API answers
   (without the HTTP round trip), and of two PromQL queries (a 1 h query_range, a
   group_left join).
2. autoscaling and alerting (a real `bosun up --runtime process` with every default): time
   from a metric crossing its HPA's threshold to the HPA's scale write, for CPU
   (metrics.k8s.io) and for a scraped custom metric (custom.metrics.k8s.io), target < 15 s
   (upstream's sync period); and from the same custom metric crossing a user alert rule's
   threshold to the firing message at a webhook on loopback (every default: the rules are
   evaluated as each history round lands, groupWait 5 s), held to the same 15 s.

Each part runs ``--runs`` times; the table shows medians. Writes bench/results/metrics-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _hpa_latency
import _metrics_history
from _cli import results_header, run_async, text_table, write_result

RESULTS = Path(__file__).resolve().parent / "results"
SCALE_TARGET_S = 15.0


def main(args: argparse.Namespace) -> dict[str, Any]:
    result = results_header(args, args.note)
    print(f"loop speed {result['machine']['loop_mops']} M iterations/s")
    history = []
    if not args.skip_history:
        for r in range(args.runs):
            # A fresh process per run: its RSS growth is the history's, not a reuse of the
            # heap an earlier run freed.
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                history.append(pool.submit(_metrics_history.run, args.nodes, args.pods, args.namespaces,
                                           args.ticks, args.queries).result())
            print(f"history run {r + 1}: {history[-1]}")
    latency: dict[str, list[float]] = {"cpu": [], "custom": [], "alert": []}
    if not args.skip_hpa:
        with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
            latency = run_async(_hpa_latency.measure(Path(tmp), args.runs, args.timeout))
        print(f"scale latencies: {latency}")
    result["history"], result["scale_latency_s"] = history, latency
    rows = []

    def med(key: str) -> float:
        return statistics.median(h[key] for h in history)

    if history:
        rows += [
            ["series", f"{med('series'):,.0f}", "", ""],
            ["ingest CPU per 1,000 samples", f"{med('ingest_cpu_ms_per_1000'):.2f} ms", "", ""],
            ["ingest CPU per 10 s round", f"{med('ingest_cpu_s_per_round'):.2f} s", "", ""],
            ["1 h of history: rings", f"{med('rings_bytes') / 2**20:.0f} MiB", "", ""],
            ["1 h of history: RSS growth", f"{med('rss_bytes') / 2**20:.0f} MiB", "", ""],
            ["1 h of history: disk (snapshot)", f"{med('disk_bytes') / 2**20:.0f} MiB", "", ""],
            ["snapshot write / read back",
             f"{med('snapshot_write_s'):.2f} / {med('snapshot_read_s'):.2f} s", "", ""],
            ["query one pod, 1 h: p50 / p99",
             f"{med('query_pod_p50_ms'):.2f} / {med('query_pod_p99_ms'):.2f} ms", "", ""],
            [f"query a namespace ({history[0]['pods_per_namespace']} pods), 5 min: p50 / p99",
             f"{med('query_namespace_5m_p50_ms'):.1f} / {med('query_namespace_5m_p99_ms'):.1f} ms", "", ""],
            ["PromQL range 1 h / 60 s, sum by namespace: p50 / p99",
             f"{med('promql_range_1h_p50_ms'):.0f} / {med('promql_range_1h_p99_ms'):.0f} ms", "", ""],
            [f"PromQL group_left join, {history[0]['pods_per_namespace']} pods: p50 / p99",
             f"{med('promql_group_left_p50_ms'):.1f} / {med('promql_group_left_p99_ms'):.1f} ms", "", ""],
        ]
    verdicts = {}
    for kind, values in latency.items():
        if values:
            m = statistics.median(values)
            verdicts[kind] = "met" if m < SCALE_TARGET_S else "MISSED"
            what = "threshold -> alert at webhook" if kind == "alert" else f"threshold -> scale write ({kind})"
            rows.append([what, f"{m:.1f} s", f"< {SCALE_TARGET_S:.0f} s", verdicts[kind]])
    result["verdicts"] = verdicts
    print()
    print(text_table([f"measure (median of {args.runs} runs)", "value", "target", "verdict"], rows))
    if not args.no_write:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        write_result(result, Path(args.output) if args.output else RESULTS / f"metrics-{stamp}.json")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--ticks", type=int, default=360, help="history rounds (360 = 1 h at 10 s)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=120.0, help="give up on one scale measurement after this")
    ap.add_argument("--skip-history", action="store_true")
    ap.add_argument("--skip-hpa", action="store_true")
    ap.add_argument("--note", default="", help="what shared the machine during the run")
    ap.add_argument("--output", metavar="PATH")
    ap.add_argument("--no-write", action="store_true")
    return ap.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
