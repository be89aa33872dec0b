"""PromQL range queries over 10,000 pods' hour of history, a baseline commit against this tree,
alternated in one command:

    .venv/bin/python bench/promql_range.py [--base b0fcd9d] [--runs 3] [--reps 5] [--pods 10000]

Each run is a fresh process on one side (the baseline's ``src`` comes out of ``git archive``,
this tree's is copied when the command starts; nothing in the repository is touched), in
the order base, change, base, change...: both sides see the same machine load. A run fills
a history with ``--pods`` pods' CPU, memory and restart counts in 100 namespaces (one sample
every 10 s for an hour), then times each query ``--reps`` times, its answer JSON-encoded as
/metrics/query(_range) answers it: the issue's ``sum by (namespace) (...)`` over 1 h at 60 s
steps, range functions over 1 h, and the instant queries of bench/promql.py (the alert
rules' kind) to show what the one-step case costs. Medians of the runs' p50/p99 are printed,
next to the target.

Target: the 1 h ``sum by (namespace)`` range query over 10,000 pods under 500 ms p50.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli import results_header, text_table, write_result

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 500.0
QUERIES = [
    ("range 1h/60s", "sum by (namespace) (pod_cpu_usage_cores)"),
    ("range 1h/60s", "sum by (namespace) (rate(pod_container_restarts_total[15m]))"),
    ("range 1h/60s", 'max by (namespace) (avg_over_time(pod_cpu_usage_cores{namespace=~"ns-1.*"}[5m]))'),
    ("instant", "sum by (namespace) (pod_cpu_usage_cores)"),
    # bench/promql.py's rules of the kind users write, as the alert evaluation asks them.
    ("instant", "sum by (namespace) (rate(pod_container_restarts_total[15m])) > 0"),
    ("instant", "pod_cpu_usage_cores / pod_memory_working_set_bytes > 0"),
    ("instant", 'max by (namespace) (avg_over_time(pod_cpu_usage_cores{namespace=~"ns-1.*"}[5m])) > 0.2'),
]


def child(pods: int, reps: int) -> dict[str, Any]:
    """One run, in this process, on whatever ``bosun`` the path imports."""
    import orjson

    from bosun.monitoring.history import HistoryConfig, MetricsHistory
    from bosun.monitoring.promql import parse
    from bosun.monitoring.promql_eval import Evaluator, HistorySource

    history = MetricsHistory(HistoryConfig())
    labels = [{"namespace": f"ns-{p % 100}", "pod": f"pod-{p:06d}", "node": f"hollow-{p // 10:05d}"}
              for p in range(pods)]
    now = time.time()
    for tick in range(360):
        t = now - (359 - tick) * 10.0
        history.add_many((("pod_cpu_usage_cores", lb, 0.001 * ((p + tick) % 500)) for p, lb in enumerate(labels)),
                         t)
        history.add_many((("pod_memory_working_set_bytes", lb, 5e7 + p) for p, lb in enumerate(labels)), t)
        history.add_many((("pod_container_restarts_total", lb, float((p + tick) // 90 if p % 7 == 0 else 0))
                          for p, lb in enumerate(labels)), t)
    evaluator = Evaluator(HistorySource(history))
    out: dict[str, Any] = {}
    for kind, text in QUERIES:
        expr = parse(text)
        times = []
        for _ in range(reps):
            end = now  # the newest samples' time: filling took minutes, and "now" would find them gone
            t0 = time.perf_counter()
            if kind == "instant":
                got: Any = [{"metric": s.labels, "value": [end, str(s.value)]} for s in evaluator.vector(expr, end)]
            else:
                got = [{"metric": m, "values": [[t, str(v)] for t, v in points]}
                       for m, points in evaluator.evaluate_range(expr, end - 3600, end, 60)]
            orjson.dumps(got)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out[f"{kind} {text}"] = {"p50_ms": statistics.median(times), "p99_ms": times[-1], "series": len(got)}
    return out


def run_side(src: Path, pods: int, reps: int) -> dict[str, Any]:
    env_path = f"{src}:{ROOT / 'bench'}"
    code = (f"import sys, json; sys.path[:0] = {env_path.split(':')!r}; import promql_range; "
            f"print(json.dumps(promql_range.child({pods}, {reps})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=3600)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="b0fcd9d", help="the baseline commit")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--note", default="2 cores shared with other sessions")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    header = results_header(args, args.note)
    print(f"loop speed {header['machine']['loop_mops']} Mops/s (1M-step loop, best of 3); {args.pods} pods, "
          f"1 h of history; base {args.base} vs this tree, {args.runs} runs each, alternated")
    sides: dict[str, list[dict[str, Any]]] = {"base": [], "change": []}
    with tempfile.TemporaryDirectory(prefix="bench-promql-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.base, "src"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        # This tree as it is now: edits made while the runs go on do not leak into them.
        change = Path(tmp) / "change" / "src"
        shutil.copytree(ROOT / "src", change, ignore=shutil.ignore_patterns("__pycache__"))
        for r in range(args.runs):
            for side, src in (("base", base / "src"), ("change", change)):
                got = run_side(src, args.pods, args.reps)
                sides[side].append(got)
                print(f"run {r + 1} {side}: " + ", ".join(f"{k[:40]}: {v['p50_ms']:.0f} ms" for k, v in got.items()))
    rows, summary = [], {}
    for key in sides["change"][0]:
        med: dict[str, dict[str, float]] = {}
        for side, runs in sides.items():
            med[side] = {q: statistics.median(run[key][q] for run in runs) for q in ("p50_ms", "p99_ms")}
        verdict = ""
        if key.startswith("range 1h/60s sum by (namespace) (pod_cpu"):
            verdict = f"< {TARGET_MS:.0f} ms p50: {'met' if med['change']['p50_ms'] < TARGET_MS else 'MISSED'}"
        rows.append([key[:72], f"{med['base']['p50_ms']:.1f} / {med['base']['p99_ms']:.1f}",
                     f"{med['change']['p50_ms']:.1f} / {med['change']['p99_ms']:.1f}",
                     f"{med['base']['p50_ms'] / med['change']['p50_ms']:.1f}x", verdict])
        summary[key] = {**med, "series": sides["change"][0][key]["series"]}
    print()
    print(text_table(["query", "base p50 / p99 ms", "change p50 / p99 ms", "speed-up", "verdict"], rows))
    if not args.no_write:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        write_result({**header, "target_ms": TARGET_MS, "medians": summary, "runs": sides},
                     ROOT / "bench" / "results" / f"promql-range-{stamp}.json")


if __name__ == "__main__":
    main()
