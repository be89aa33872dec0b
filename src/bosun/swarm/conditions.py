"""depends_on conditions, checked against what runs in the cluster: a dependency is
*started* when one of its tasks runs, *healthy* when one is ready (its healthcheck passes),
*completed successfully* when its tasks all exited 0. A dependency that failed for good
stops the wait with the reason, instead of waiting forever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bosun.client.rest import Client
from bosun.compose.translate.context import SERVICE_KEY, STACK_LABEL
from bosun.swarm.services import PODS

JSON = dict[str, Any]


class DependencyFailed(Exception):
    """A dependency that can no longer meet its condition (it exited non-zero)."""


def _ready(pod: JSON) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _phase(pod: JSON) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _started(pods: list[JSON]) -> bool:
    return any(_phase(p) in ("Running", "Succeeded") for p in pods)


def _healthy(pods: list[JSON]) -> bool:
    return any(_phase(p) == "Running" and _ready(p) for p in pods)


def _completed(pods: list[JSON]) -> bool:
    for p in pods:
        if _phase(p) == "Failed":
            raise DependencyFailed("didn't complete successfully: its task failed")
    return bool(pods) and all(_phase(p) == "Succeeded" for p in pods)


CHECKS: dict[str, Callable[[list[JSON]], bool]] = {
    "service_started": _started,
    "service_healthy": _healthy,
    "service_completed_successfully": _completed,
}
WORDS = {"service_started": "started", "service_healthy": "healthy",
         "service_completed_successfully": "completed successfully"}


async def wait_for(client: Client, stack: str, service: str, condition: str, within: float) -> None:
    """Return once ``service`` of ``stack`` meets ``condition``; TimeoutError after ``within`` seconds."""
    check = CHECKS[condition]
    selector = f"{STACK_LABEL}={stack},{SERVICE_KEY}={service}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        pods, _ = await client.list_all(PODS, stack, label_selector=selector)
        live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        if check(live):
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"service {stack}_{service} was not {WORDS[condition]} within {within:g}s")
        await asyncio.sleep(0.5)
