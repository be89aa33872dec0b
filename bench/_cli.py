"""The frame around each benchmark command's measurements: what the results file says about the
machine, running the async main on uvloop where it is installed, the printed table, and the
results file itself."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import bosun
from _procs import ROOT

T = TypeVar("T")


def loop_speed() -> float:
    """Millions of iterations per second of a plain Python loop (best of 3 tries of 1M): how
    fast this machine ran Python when the run started, so that a run on a busier or slower
    machine can be told from a slower Bosun."""
    best = 0.0
    for _ in range(3):
        t0, total = time.perf_counter(), 0
        for i in range(1_000_000):
            total += i
        best = max(best, 1.0 / (time.perf_counter() - t0))
    return round(best, 2)


def machine(note: str) -> dict[str, Any]:
    """CPU, Python, commit and loop speed of this run; ``note`` says what shared the CPUs with what."""
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "")
    commit = _commit(ROOT)
    out = {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(), "commit": commit,
           "loop_mops": loop_speed(), "note": note}
    # A baseline run imports another checkout's bosun (PYTHONPATH=<checkout>/src): say which.
    measured = Path(bosun.__file__).resolve().parents[2]
    if measured != ROOT.resolve():
        out["bosun_commit"] = _commit(measured)
        out["bosun_tree"] = str(measured)
    return out


def _commit(tree: Path) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True,
                          check=False).stdout.strip()


def results_header(args: argparse.Namespace, note: str, hidden: tuple[str, ...] = ("no_write", "output")
                   ) -> dict[str, Any]:
    """What every results file starts with: when, on what machine (``note`` as in machine()), and
    the options of the run (but ``hidden``, which do not change what is measured)."""
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(note),
        "params": {k: v for k, v in vars(args).items() if k not in hidden},
    }


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop (what `bosun` itself runs on where installed), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.run(main)
    return uvloop.run(main)


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """Right-aligned columns under a rule, as the benchmarks print their results."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def write_result(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")
