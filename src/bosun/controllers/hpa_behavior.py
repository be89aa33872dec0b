"""From the metrics' wish to the replica count written: Kubernetes' HPA normalization
(pkg/controller/podautoscaler/horizontal.go), kept per HPA in memory as upstream does.

Without ``spec.behavior``: scale-down takes the highest recommendation of the last
``downscale_window`` seconds (flag, default 300), and one step up is at most
max(2 x current, 4). With it: each direction's stabilization window (scale-up: the lowest
recent recommendation, scale-down: the highest), then the policies of the direction
(Pods or Percent per period, the Max or Min of them, or Disabled) against the changes
made within each policy's period. The result is clamped to [min, max]; each step says
why in the AbleToScale and ScalingLimited conditions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
DEFAULT_DOWNSCALE_WINDOW = 300.0


@dataclass(frozen=True, slots=True)
class Verdict:
    replicas: int
    reason: str
    message: str


@dataclass
class _Memory:
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    ups: list[tuple[float, int]] = field(default_factory=list)  # (time, replicas added)
    downs: list[tuple[float, int]] = field(default_factory=list)  # (time, replicas removed)


def _changed_within(events: list[tuple[float, int]], period: float, now: float) -> int:
    return sum(n for t, n in events if t > now - period)


def scale_up_limit(current: int, events: list[tuple[float, int]], rules: Obj, now: float) -> int:
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    results = []
    for p in rules.get("policies") or []:
        start = current - _changed_within(events, float(p.get("periodSeconds") or 0), now)
        value = int(p.get("value") or 0)
        results.append(start + value if p.get("type") == "Pods" else math.ceil(start * (1 + value / 100)))
    if not results:
        return current
    return min(results) if select == "Min" else max(results)


def scale_down_limit(current: int, events: list[tuple[float, int]], rules: Obj, now: float) -> int:
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    results = []
    for p in rules.get("policies") or []:
        start = current + _changed_within(events, float(p.get("periodSeconds") or 0), now)
        value = int(p.get("value") or 0)
        results.append(start - value if p.get("type") == "Pods" else int(start * (1 - value / 100)))
    if not results:
        return current
    return max(results) if select == "Min" else min(results)


class Normalizer:
    def __init__(self, downscale_window: float = DEFAULT_DOWNSCALE_WINDOW) -> None:
        self.downscale_window = downscale_window
        self._memory: dict[str, _Memory] = {}

    def forget(self, key: str) -> None:
        self._memory.pop(key, None)

    def _mem(self, key: str) -> _Memory:
        m = self._memory.get(key)
        if m is None:
            m = self._memory[key] = _Memory()
        return m

    def record_initial(self, key: str, current: int, now: float | None = None) -> None:
        """A new HPA starts from the target's current size as its first recommendation."""
        m = self._mem(key)
        if not m.recommendations:
            m.recommendations.append((time.time() if now is None else now, current))

    def normalize(self, key: str, spec: Obj, current: int, desired: int,
                  now: float | None = None) -> tuple[int, Verdict, Verdict]:
        """(replicas, AbleToScale verdict, ScalingLimited verdict)."""
        t = time.time() if now is None else now
        lo, hi = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        behavior = spec.get("behavior")
        if behavior is None:
            stabilized = self._stabilize_down(key, desired, t)
            able = (Verdict(stabilized, "ScaleDownStabilized",
                            "recent recommendations were higher than current one, applying the highest recent "
                            "recommendation") if stabilized != desired
                    else Verdict(stabilized, "ReadyForNewScale", "recommended size matches current size"))
            limited = _plain_limits(current, stabilized, lo, hi)
            return limited.replicas, able, limited
        up_rules = behavior.get("scaleUp") or {}
        down_rules = behavior.get("scaleDown") or {}
        stabilized, reason, message = self._stabilize(key, current, desired, up_rules, down_rules, t)
        able = (Verdict(stabilized, reason, message) if stabilized != desired
                else Verdict(stabilized, "ReadyForNewScale", "recommended size matches current size"))
        limited = self._rate_limits(key, current, stabilized, lo, hi, up_rules, down_rules, t)
        return limited.replicas, able, limited

    def _stabilize_down(self, key: str, desired: int, now: float) -> int:
        m = self._mem(key)
        cutoff = now - self.downscale_window
        m.recommendations = [r for r in m.recommendations if r[0] > cutoff]
        best = max([desired, *(r for _, r in m.recommendations)])
        m.recommendations.append((now, desired))
        return best

    def _stabilize(self, key: str, current: int, desired: int, up: Obj, down: Obj,
                   now: float) -> tuple[int, str, str]:
        m = self._mem(key)
        up_window = float(up.get("stabilizationWindowSeconds") or 0)
        down_raw = down.get("stabilizationWindowSeconds")
        down_window = float(self.downscale_window if down_raw is None else down_raw)
        up_rec = down_rec = desired
        for t, r in m.recommendations:
            if t > now - up_window:
                up_rec = min(up_rec, r)
            if t > now - down_window:
                down_rec = max(down_rec, r)
        keep = max(up_window, down_window)
        m.recommendations = [x for x in m.recommendations if x[0] > now - keep]
        m.recommendations.append((now, desired))
        recommendation = min(max(current, up_rec), down_rec)
        if desired >= current:
            return (recommendation, "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest recent recommendation")
        return (recommendation, "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation")

    def _rate_limits(self, key: str, current: int, desired: int, lo: int, hi: int, up: Obj, down: Obj,
                     now: float) -> Verdict:
        m = self._mem(key)
        if desired > current:
            limit = max(scale_up_limit(current, m.ups, up, now), current)
            if hi > limit:
                allowed, reason, message = limit, "ScaleUpLimit", (
                    "the desired replica count is increasing faster than the maximum scale rate")
            else:
                allowed, reason, message = hi, "TooManyReplicas", (
                    "the desired replica count is more than the maximum replica count")
            if desired > allowed:
                return Verdict(allowed, reason, message)
        elif desired < current:
            limit = min(scale_down_limit(current, m.downs, down, now), current)
            if lo < limit:
                allowed, reason, message = limit, "ScaleDownLimit", (
                    "the desired replica count is decreasing faster than the maximum scale rate")
            else:
                allowed, reason, message = lo, "TooFewReplicas", (
                    "the desired replica count is less than the minimum replica count")
            if desired < allowed:
                return Verdict(allowed, reason, message)
        return Verdict(desired, "DesiredWithinRange", "the desired count is within the acceptable range")

    def record_scale(self, key: str, spec: Obj, before: int, after: int, now: float | None = None) -> None:
        """Remember a scale write for the policies' periods (only with spec.behavior, as upstream)."""
        behavior = spec.get("behavior")
        if behavior is None or before == after:
            return
        t = time.time() if now is None else now
        m = self._mem(key)
        rules = (behavior.get("scaleUp") if after > before else behavior.get("scaleDown")) or {}
        longest = max([float(p.get("periodSeconds") or 0) for p in rules.get("policies") or []] or [0.0])
        events = m.ups if after > before else m.downs
        events[:] = [e for e in events if e[0] > t - longest]
        events.append((t, abs(after - before)))


def _plain_limits(current: int, desired: int, lo: int, hi: int) -> Verdict:
    up_limit = max(2 * current, 4)
    if hi > up_limit:
        allowed, reason, message = up_limit, "ScaleUpLimit", (
            "the desired replica count is increasing faster than the maximum scale rate")
    else:
        allowed, reason, message = hi, "TooManyReplicas", (
            "the desired replica count is more than the maximum replica count")
    if desired < lo:
        return Verdict(lo, "TooFewReplicas", "the desired replica count is less than the minimum replica count")
    if desired > allowed:
        return Verdict(allowed, reason, message)
    return Verdict(desired, "DesiredWithinRange", "the desired count is within the acceptable range")
