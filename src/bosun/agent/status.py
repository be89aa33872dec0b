"""Pod status: built from what the runtime reports, written to the API coalesced.

Many changes in a short window (100 pods starting, a container flapping) become one write
per pod: :meth:`StatusManager.set` only records the latest wanted status; a single writer
sends what changed since the last write, a few at a time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from bosun.agent.runtime.base import ContainerStatus
from bosun.api.registry import Resource, by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import TRANSPORT_ERRORS, Client

log = logging.getLogger(__name__)
_pods = by_plural("", "v1", "pods")
assert _pods is not None
PODS: Resource = _pods
RETRYABLE: tuple[type[BaseException], ...] = (ApiError, *TRANSPORT_ERRORS)


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def terminated(st: ContainerStatus, runtime: str) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": st.exit_code if st.exit_code is not None else 255,
                           "reason": st.reason or ("Completed" if st.exit_code == 0 else "Error"),
                           "containerID": f"{runtime}://{st.id}"}
    if st.message:
        out["message"] = st.message
    if st.started_at:
        out["startedAt"] = rfc3339(st.started_at)
    if st.finished_at:
        out["finishedAt"] = rfc3339(st.finished_at)
    return out


def condition(old: list[dict[str, Any]], ctype: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    """A pod condition that keeps its lastTransitionTime while its status stays the same."""
    status = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None,
                            "lastTransitionTime": since or now()}
    if not ok and reason:
        cond["reason"] = reason
    if not ok and message:
        cond["message"] = message
    return cond


class StatusManager:
    def __init__(self, client: Client, flush_interval: float = 0.2, parallel: int = 16) -> None:
        self.client = client
        self.flush_interval = flush_interval
        self.parallel = parallel
        self._pending: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._wake = asyncio.Event()

    def set(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        if self._written.get(uid) == status:
            self._pending.pop((namespace, name), None)
            return
        self._pending[(namespace, name)] = (uid, status)
        self._wake.set()

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)

    async def write_now(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        """Used on pod termination, where the final status must land before the delete."""
        self._pending.pop((namespace, name), None)
        await self._write(namespace, name, uid, status)

    async def run(self) -> None:
        sem = asyncio.Semaphore(self.parallel)

        async def one(key: tuple[str, str], uid: str, status: dict[str, Any]) -> None:
            async with sem:
                await self._write(key[0], key[1], uid, status)

        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval)
            self._wake.clear()
            batch, self._pending = self._pending, {}
            await asyncio.gather(*(one(k, uid, st) for k, (uid, st) in batch.items()))

    async def _write(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        try:
            await self.client.patch(PODS, name, {"status": status}, namespace, subresource="status")
            self._written[uid] = status
        except ApiError as e:
            if e.status == 404:
                return
            log.warning("pod %s/%s: status write failed: %s", namespace, name, e)
            self._retry(namespace, name, uid, status)
        except TRANSPORT_ERRORS as e:
            log.warning("pod %s/%s: status write failed: %s", namespace, name, e)
            self._retry(namespace, name, uid, status)

    def _retry(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        # Keep the newest wanted status; the API server may be back at the next flush.
        self._pending.setdefault((namespace, name), (uid, status))
        asyncio.get_running_loop().call_later(1.0, self._wake.set)
