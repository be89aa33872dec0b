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
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from _procs import ROOT

T = TypeVar("T")


def machine(note: str) -> dict[str, Any]:
    """CPU, Python and commit of this run; ``note`` says what shared the CPUs with what."""
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(), "commit": commit,
            "note": note}


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
