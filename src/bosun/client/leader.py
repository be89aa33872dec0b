"""Leader election on a coordination.k8s.io/v1 Lease, like client-go's leaderelection.

With several managers (etcd store), every scheduler and controller manager runs, but only
the holder of the Lease acts. Acquisition and renewal are compare-and-swap updates of the
Lease, so two candidates can never both believe they lead for longer than the renew
deadline; expiry is judged on this process's clock (when the record last changed), so
clock skew between machines does not matter.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from bosun.api.kinds import Kind, by_kind
from bosun.client.rest import TRANSPORT_ERRORS, ApiError, Client

log = logging.getLogger(__name__)

def _lease_resource() -> Kind:
    found = by_kind("coordination.k8s.io/v1", "Lease")
    if found is None:
        raise RuntimeError("coordination.k8s.io/v1 Lease is missing from the resource registry")
    return found


LEASES = _lease_resource()
RETRYABLE: tuple[type[BaseException], ...] = (ApiError, *TRANSPORT_ERRORS)


def micro_time(when: datetime | None = None) -> str:
    """Kubernetes MicroTime: ``2006-01-02T15:04:05.000000Z``."""
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs a callback only while this process holds the named Lease."""

    def __init__(
        self,
        client: Client,
        name: str,
        namespace: str = "kube-system",
        identity: str | None = None,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.is_leader = False
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0

    # -- one attempt ------------------------------------------------------------------------

    def _expired(self, spec: dict[str, Any]) -> bool:
        if not spec.get("holderIdentity"):
            return True
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return self._observed_at + duration < time.monotonic()

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed_spec:
            self._observed_spec = dict(spec)
            self._observed_at = time.monotonic()

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        if previous is not None:
            transitions = int(previous.get("leaseTransitions") or 0)
            if previous.get("holderIdentity") == self.identity:
                spec["acquireTime"] = previous.get("acquireTime") or now
                spec["leaseTransitions"] = transitions
            else:
                spec["leaseTransitions"] = transitions + 1
        return spec

    async def try_acquire_or_renew(self) -> bool:
        """One compare-and-swap attempt; True when this process holds the Lease afterwards."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except ApiError as e:
            if e.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(None),
            }
            try:
                created = await self.client.create(LEASES, body, self.namespace)
            except ApiError as ce:
                if ce.status == 409:
                    return False
                raise
            self._observe(created.get("spec") or {})
            return True
        spec = lease.get("spec") or {}
        self._observe(spec)
        if spec.get("holderIdentity") != self.identity and not self._expired(spec):
            return False
        lease["spec"] = self._spec(spec)
        try:
            updated = await self.client.update(LEASES, lease)
        except ApiError as e:
            if e.status == 409:
                return False
            raise
        self._observe(updated.get("spec") or {})
        return True

    async def _attempt(self, budget: float) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout=budget)
        except RETRYABLE as e:
            log.warning("lease %s/%s: %r", self.namespace, self.name, e)
            return False

    async def release(self) -> None:
        """Give the Lease up so the next candidate takes over at once instead of after expiry."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            now = micro_time()
            lease["spec"] = {
                **spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                "renewTime": now, "acquireTime": now,
            }
            await self.client.update(LEASES, lease)
        except RETRYABLE as e:
            log.info("lease %s/%s: release failed: %r", self.namespace, self.name, e)

    # -- the loop ---------------------------------------------------------------------------

    async def run(
        self,
        on_started_leading: Callable[[], Coroutine[Any, Any, None]],
        on_stopped_leading: Callable[[], None],
    ) -> None:
        """Wait to acquire, lead until renewal fails (or the leader task ends), then return.

        ``on_started_leading`` runs as a task that is cancelled when leadership is lost;
        ``on_stopped_leading`` is called once after that (only if this process led).
        Cancelling ``run`` cancels the leader task and releases the Lease.
        """
        # Polling the Lease is the protocol: there is no event to wait on.
        while True:
            if await self._attempt(self.retry_period):
                break
            await asyncio.sleep(self.retry_period)
        self.is_leader = True
        log.info("lease %s/%s: %s became leader", self.namespace, self.name, self.identity)
        leader: asyncio.Task[None] = asyncio.create_task(on_started_leading(), name=f"leader-{self.name}")
        release = True
        try:
            await self._renew_until_lost(leader)
            release = leader.done()  # lost the lease: someone else may hold it now
        finally:
            self.is_leader = False
            leader.cancel()
            try:
                await leader
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("lease %s/%s: leader task failed", self.namespace, self.name)
            if release:
                try:
                    await asyncio.wait_for(asyncio.shield(self.release()), self.renew_deadline)
                except TimeoutError:
                    log.info("lease %s/%s: release timed out", self.namespace, self.name)
            log.info("lease %s/%s: %s stopped leading", self.namespace, self.name, self.identity)
            try:
                on_stopped_leading()
            except Exception:
                log.exception("on_stopped_leading failed")

    async def _renew_until_lost(self, leader: asyncio.Task[None]) -> None:
        """Renew every retry_period; return when a renewal misses the deadline or the task ends."""
        loop = asyncio.get_running_loop()
        while True:
            done, _ = await asyncio.wait({leader}, timeout=self.retry_period)
            if done:
                return
            deadline = loop.time() + self.renew_deadline
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.warning("lease %s/%s: failed to renew within %ss", self.namespace, self.name,
                                self.renew_deadline)
                    return
                if await self._attempt(remaining):
                    break
                done, _ = await asyncio.wait({leader}, timeout=min(self.retry_period, remaining))
                if done:
                    return
