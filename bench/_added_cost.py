"""The report of an in-process "what does X add to a write" benchmark: rounds alternating a
baseline with X, each round's median per write, and the median of what X added against a
target. One shape for every such bench (admission policies, quotas), so their tables and
result files read alike."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from _cli import text_table, write_result


def report(name: str, rounds: list[dict[str, float]], label: str, *, target_ms: float, what: str,
           columns: tuple[str, str], header: dict[str, Any], result: dict[str, Any], out: Path | None) -> str:
    """Print the table (one row per round, then the medians) and write ``name-STAMP.json``
    to ``out`` (a directory; None: write nothing). ``rounds`` hold ``baseline`` and
    ``label`` ms/write; the verdict is on the median of their per-round difference."""
    base = statistics.median(r["baseline"] for r in rounds)
    with_x = statistics.median(r[label] for r in rounds)
    added = statistics.median(r[label] - r["baseline"] for r in rounds)
    verdict = "met" if added <= target_ms else "MISSED"
    print(f"loop speed {header['machine']['loop_mops']} Mops/s; {what}\n")
    rows = [[str(i + 1), f"{r['baseline']:.2f}", f"{r[label]:.2f}", f"{r[label] - r['baseline']:.2f}"]
            for i, r in enumerate(rounds)]
    rows.append(["median", f"{base:.2f}", f"{with_x:.2f}", f"{added:.2f} (target <= {target_ms:.0f}: {verdict})"])
    print(text_table(["round", *columns, "added ms"], rows))
    if out is not None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        write_result({**header, **result, "median_ms": {"baseline": base, label: with_x, "added": added},
                      "target_added_ms": target_ms, "verdict": verdict}, out / f"{name}-{stamp}.json")
    return verdict
