"""Alert-rule expressions over the metrics history, in process (the query API's evaluation,
without its HTTP round trip):

    .venv/bin/python bench/promql.py [--nodes 1000] [--pods 10000] [--minutes 15] [--runs 20]

The history is filled as the collector fills it (bench/_metrics_history.py: ``--pods`` pods
on ``--nodes`` nodes in 100 namespaces, ``--minutes`` of 10 s rounds), then each expression
below is evaluated ``--runs`` times and its answer JSON-encoded as /metrics/query answers it.
The built-in rules over the history (no HTTP checks or claims here: they cost a lookup) and
three rules of the kind users write: a per-namespace rate over 15 minutes, a ratio of two
vectors of every pod (one-to-one matching), a regex matcher and a 5 minute average.

Target: all of them in one evaluation well inside the default 10 s interval (< 1 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli import results_header, text_table, write_result
from _metrics_history import Summaries, ingest, restarts
from bosun.alerting.builtin_expr import EXPR_RULES
from bosun.monitoring.history import HistoryConfig, MetricsHistory
from bosun.monitoring.ingest import restart_samples
from bosun.monitoring.promql import parse
from bosun.monitoring.promql_eval import Evaluator, HistorySource

ROOT = Path(__file__).resolve().parent.parent
ROUND_TARGET_MS = 1000.0
USER_RULES = [
    "sum by (namespace) (rate(pod_container_restarts_total[15m])) > 0",
    "pod_cpu_usage_cores / pod_memory_working_set_bytes > 0",
    'max by (namespace) (avg_over_time(pod_cpu_usage_cores{namespace=~"ns-1.*"}[5m])) > 0.2',
]


def expressions() -> list[str]:
    return [r.expr_text for r in EXPR_RULES] + USER_RULES


def fill(nodes: int, pods: int, minutes: int) -> MetricsHistory:
    history = MetricsHistory(HistoryConfig())
    source = Summaries(nodes, pods, 100)
    restart_pods = [list(restart_samples(p)) for p in restarts(pods, 100)]
    ticks = minutes * 6
    start = time.time() - ticks * 10.0
    for tick in range(ticks):
        ingest(history, source.tick(tick), restart_pods, start + tick * 10.0)
    return history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--minutes", type=int, default=15)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    header = results_header(args, "in process; other work on the machine as it happened")
    history = fill(args.nodes, args.pods, args.minutes)
    evaluator = Evaluator(HistorySource(history))
    rows, result, rounds = [], {}, [0.0] * args.runs
    for text in expressions():
        expr = parse(text)
        times = []
        for i in range(args.runs):
            t0 = time.perf_counter()
            out = evaluator.vector(expr)
            orjson.dumps([{"metric": s.labels, "value": [0, str(s.value)]} for s in out])
            took = (time.perf_counter() - t0) * 1000
            times.append(took)
            rounds[i] += took
        times.sort()
        med, p99 = statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]
        rows.append([text[:70], f"{med:.1f}", f"{p99:.1f}", str(len(out))])
        result[text] = {"median_ms": med, "p99_ms": p99, "series": len(out)}
    round_med = statistics.median(rounds)
    rows.append(["all of them (one evaluation)", f"{round_med:.1f}", f"{max(rounds):.1f}",
                 f"< {ROUND_TARGET_MS:.0f} ms: {'met' if round_med < ROUND_TARGET_MS else 'MISSED'}"])
    print(f"loop speed {header['machine']['loop_mops']} Mops/s; {args.nodes} nodes, {args.pods} pods, "
          f"{len(history)} series, {args.minutes} min of history\n")
    print(text_table(["expression", "median ms", "p99 ms", "series / verdict"], rows))
    if not args.no_write:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        write_result({**header, "series": len(history), "expressions": result,
                      "round_ms": {"median": round_med, "max": max(rounds), "target": ROUND_TARGET_MS}},
                     ROOT / "bench" / "results" / f"promql-{stamp}.json")


if __name__ == "__main__":
    main()
