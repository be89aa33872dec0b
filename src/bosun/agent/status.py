"""Pod status: built from what the runtime reports, written to the API coalesced.

Many changes in a short window (100 pods starting, a container flapping) become one write
per pod: :meth:`StatusManager.set` only records the latest wanted status; a few writers send
what changed since the last write, each pod at most ``flush_interval`` after its first
change. There is no batch barrier: one slow write (or 100 pods' worth of them) does not hold
back a pod that became Ready meanwhile (with a batch-then-gather loop the 100-pod benchmark
saw every pod turn Running within the same 30 ms, up to 1.4 s after its container started).
A pod is never written by two writers at once, so its writes land in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
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


Key = tuple[str, str]


def _signal(status: dict[str, Any] | None) -> tuple[Any, ...]:
    """What readers of a pod's status act on: its phase and its Ready condition."""
    if status is None:
        return ()
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return status.get("phase"), ready


class StatusManager:
    def __init__(self, client: Client, flush_interval: float = 0.2, parallel: int = 16) -> None:
        self.client = client
        self.flush_interval = flush_interval
        self.parallel = parallel
        self._pending: dict[Key, tuple[str, dict[str, Any]]] = {}
        self._written: dict[str, dict[str, Any]] = {}
        # Pods waiting for their write, earliest due first; an entry whose due is not the
        # pod's in _due was overtaken by an earlier one and is skipped.
        self._heap: list[tuple[float, Key]] = []
        self._due: dict[Key, float] = {}
        self._changed = asyncio.Event()
        self._ready: asyncio.Queue[Key] = asyncio.Queue()  # due now: for the writers
        self._inflight: set[Key] = set()

    def set(self, namespace: str, name: str, uid: str, status: dict[str, Any], hold: float = 0.0) -> None:
        """``hold``: how long a new phase or readiness may wait for the next change of this
        pod, when the caller knows one is coming (Running, then Ready a first readiness probe
        later): one write instead of two, which with 100 pods starting is 100 patches and
        their watch events less. The change that follows goes out at once."""
        key = (namespace, name)
        if self._written.get(uid) == status:
            self._pending.pop(key, None)
            return
        self._pending[key] = (uid, status)
        # A new phase or readiness goes out at once (Endpoints and watchers wait for it);
        # other changes (restart counts, messages, probe times) wait to be coalesced.
        urgent = _signal(status) != _signal(self._written.get(uid))
        self._enqueue(key, time.monotonic() + (hold if urgent else self.flush_interval))

    def _enqueue(self, key: Key, due: float) -> None:
        # In flight: the writer re-queues it when done (so writes of one pod stay in order).
        if key in self._inflight:
            return
        queued = self._due.get(key)
        if queued is None or due < queued:  # an earlier due overtakes a held or coalescing one
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            self._changed.set()

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)

    async def write_now(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        """Used on pod termination, where the final status must land before the delete."""
        self._pending.pop((namespace, name), None)
        await self._write(namespace, name, uid, status)

    async def run(self) -> None:
        """The writers take pods as they fall due; none of them sleeps with a pod in hand, so
        a held or coalescing pod never delays one that is due now."""
        writers = [asyncio.create_task(self._writer(), name=f"agent-status-{i}") for i in range(self.parallel)]
        try:
            await self._dispatch()
        finally:
            for w in writers:
                w.cancel()

    async def _dispatch(self) -> None:
        while True:
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                due, key = heapq.heappop(self._heap)
                if self._due.get(key) == due:
                    del self._due[key]
                    self._ready.put_nowait(key)
            self._changed.clear()
            timeout = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()

    async def _writer(self) -> None:
        while True:
            key = await self._ready.get()
            if key in self._inflight:
                continue  # its writer re-queues it when done
            item = self._pending.pop(key, None)
            if item is None:
                continue
            self._inflight.add(key)
            try:
                await self._write(key[0], key[1], *item)
            finally:
                self._inflight.discard(key)
                if key in self._pending:
                    self._enqueue(key, time.monotonic())

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
        # Keep the newest wanted status; try again in a second (the API server may be back).
        asyncio.get_running_loop().call_later(1.0, self._requeue, (namespace, name), uid, status)

    def _requeue(self, key: Key, uid: str, status: dict[str, Any]) -> None:
        if self._written.get(uid) == status and key not in self._pending:
            return
        self._pending.setdefault(key, (uid, status))
        self._enqueue(key, 0.0)
