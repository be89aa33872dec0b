"""Pure helpers of the ReplicaSet controller: in-flight expectations, the order in which
surplus pods die, the slow-start batches pods are created in, and status arithmetic.

Kept apart from the controller so that each can be reasoned about (and unit-tested)
without an API server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bosun.controllers._common import (
    is_pod_ready,
    key_of,
    now,
    parse_time,
    ready_since,
)

Obj = dict[str, Any]
# Kubernetes forgets expectations after five minutes: a watch event lost for good must not
# stall a ReplicaSet forever.
EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Expect:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    stamp: float = field(default_factory=time.monotonic)


class Expectations:
    """Creates and deletes a controller has asked for but not yet seen in its informer.

    While any are outstanding the controller does not count pods again: the informer lags
    the API, and counting a stale cache is how duplicate pods are born."""

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.timeout = timeout
        self._by_key: dict[str, _Expect] = {}

    def expect_creations(self, key: str, n: int) -> None:
        self._by_key[key] = _Expect(adds=n)

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        self._by_key[key] = _Expect(deletes=set(pod_keys))

    def creation_observed(self, key: str, n: int = 1) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.adds = max(0, e.adds - n)

    def deletion_observed(self, key: str, pod_key: str) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.deletes.discard(pod_key)

    def satisfied(self, key: str) -> bool:
        e = self._by_key.get(key)
        if e is None or (e.adds <= 0 and not e.deletes):
            return True
        return time.monotonic() - e.stamp > self.timeout

    def pending(self, key: str) -> tuple[int, int]:
        e = self._by_key.get(key)
        return (0, 0) if e is None else (e.adds, len(e.deletes))

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)


async def slow_start(count: int, fn: Callable[[], Awaitable[Any]], initial: int = 1
                     ) -> tuple[int, BaseException | None]:
    """Call ``fn`` ``count`` times in batches of 1, 2, 4, ... stopping after the first batch
    with an error, so that a template the API refuses costs one request, not thousands.
    Returns (successes, first error)."""
    remaining, successes = count, 0
    batch = min(remaining, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in errors:
            if isinstance(r, asyncio.CancelledError):
                raise r
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(remaining, 2 * batch)
    return successes, None


def _restarts(pod: Obj) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods sorted most expendable first, as Kubernetes' ActivePodsWithRanks: unscheduled,
    then pending/unknown, then not ready, then doubled up on a node, then ready for the
    shortest time, then most restarted, then youngest."""
    per_node: dict[str, int] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName") or ""
        if node:
            per_node[node] = per_node.get(node, 0) + 1
    far_past = datetime.min.replace(tzinfo=now().tzinfo)

    def rank(p: Obj) -> tuple[Any, ...]:
        node = (p.get("spec") or {}).get("nodeName") or ""
        phase = (p.get("status") or {}).get("phase") or "Pending"
        since = ready_since(p)
        created = parse_time((p.get("metadata") or {}).get("creationTimestamp")) or far_past
        return (
            1 if node else 0,
            _PHASE_RANK.get(phase, 0),
            1 if is_pod_ready(p) else 0,
            -per_node.get(node, 0),
            # later ready / later created sorts first: negate via timestamp
            -(since.timestamp() if since else 0.0),
            -_restarts(p),
            -created.timestamp(),
            key_of(p),
        )

    return sorted(pods, key=rank)


def _ready_condition(pod: Obj) -> Obj | None:
    """The Ready condition itself (no copy: read-only use in per-pod loops over 10,000 pods)."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c  # type: ignore[no-any-return]
    return None


def replica_status(pods: list[Obj], template_labels: dict[str, str], min_ready: int,
                   at: datetime | None = None) -> dict[str, int]:
    """Counts for ReplicaSet status from its active pods.

    One pass that reads each pod's labels and Ready condition once, without copying them:
    this runs on every sync of a ReplicaSet, and a profile of a 10,000-replica rolling update
    had the earlier four passes (each copying dicts) at a fifth of the server's CPU."""
    at = at or now()
    wanted = list(template_labels.items())
    labeled = ready = available = 0
    for p in pods:
        labels = (p.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in wanted):
            labeled += 1
        c = _ready_condition(p)
        if c is None or c.get("status") != "True":
            continue
        ready += 1
        if min_ready <= 0:
            available += 1
        else:
            since = parse_time(c.get("lastTransitionTime"))
            available += since is not None and (at - since).total_seconds() >= min_ready
    return {"replicas": len(pods), "fullyLabeledReplicas": labeled, "readyReplicas": ready,
            "availableReplicas": available}
