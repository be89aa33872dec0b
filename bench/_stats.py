"""Latency and throughput summaries, computed the same way for every phase."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[i]


def summarize(latencies: Sequence[float], elapsed: float) -> dict[str, float]:
    """ops, ops/s and p50/p99/max in milliseconds from per-operation seconds."""
    lat = sorted(latencies)
    return {
        "ops": len(lat),
        "ops_per_s": round(len(lat) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "max_ms": round((lat[-1] if lat else 0.0) * 1000, 2),
    }
