"""Leader election on a Lease against the real API server."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import pytest

from bosun.client import Client, LeaderElector
from bosun.client.leader import LEASES

MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[None]]]:
    """Election loops a test starts; cancelled even when the test fails."""
    started: list[asyncio.Task[None]] = []
    try:
        yield started
    finally:
        for t in started:
            t.cancel()
        await asyncio.gather(*started, return_exceptions=True)


class Candidate:
    """One elector plus a record of when it led."""

    def __init__(self, client: Client, lease: str, identity: str) -> None:
        self.elector = LeaderElector(client, lease, "kube-system", identity=identity, **FAST)
        self.leading = asyncio.Event()
        self.stopped = asyncio.Event()
        self.cancelled = False

    async def on_started(self) -> None:
        self.leading.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def on_stopped(self) -> None:
        self.stopped.set()

    def run(self, tasks: list[asyncio.Task[None]]) -> asyncio.Task[None]:
        t = asyncio.create_task(self.elector.run(self.on_started, self.on_stopped))
        tasks.append(t)
        return t


async def test_one_leads_and_the_other_takes_over_when_it_stops(
    client: Client, tasks: list[asyncio.Task[None]],
) -> None:
    lease = f"lock-{uuid.uuid4().hex[:8]}"
    a, b = Candidate(client, lease, "a"), Candidate(client, lease, "b")
    run_a = a.run(tasks)
    await asyncio.wait_for(a.leading.wait(), 5)
    b.run(tasks)
    await asyncio.sleep(1.0)  # several retry periods: b must keep waiting
    assert a.elector.is_leader and not b.elector.is_leader
    assert not b.leading.is_set()

    obj = await client.get(LEASES, lease, "kube-system")
    spec = obj["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 2
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.match(spec["acquireTime"]) and MICRO_TIME.match(spec["renewTime"])
    assert spec["renewTime"] > spec["acquireTime"], "the leader keeps renewing"

    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    run_a.cancel()
    await asyncio.gather(run_a, return_exceptions=True)
    assert a.cancelled and a.stopped.is_set() and not a.elector.is_leader
    await asyncio.wait_for(b.leading.wait(), FAST["lease_duration"] + 1)
    assert loop.time() - stopped_at < FAST["lease_duration"]
    spec = (await client.get(LEASES, lease, "kube-system"))["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


async def test_a_crashed_leader_is_replaced_after_its_lease_expires(
    client: Client, tasks: list[asyncio.Task[None]],
) -> None:
    lease = f"lock-{uuid.uuid4().hex[:8]}"
    crashed = LeaderElector(client, lease, "kube-system", identity="crashed", **FAST)
    assert await crashed.try_acquire_or_renew()  # takes the lease, then never renews or releases it
    b = Candidate(client, lease, "b")
    loop = asyncio.get_running_loop()
    start = loop.time()
    b.run(tasks)
    await asyncio.wait_for(b.leading.wait(), FAST["lease_duration"] + 2)
    waited = loop.time() - start
    assert waited >= FAST["lease_duration"] - 0.5, "an unexpired lease must be respected"
    assert (await client.get(LEASES, lease, "kube-system"))["spec"]["holderIdentity"] == "b"


async def test_leader_steps_down_when_someone_else_holds_the_lease(
    client: Client, tasks: list[asyncio.Task[None]],
) -> None:
    """If renewals fail (here: another holder overwrote the Lease), the leader task is cancelled."""
    lease = f"lock-{uuid.uuid4().hex[:8]}"
    a = Candidate(client, lease, "a")
    run_a = a.run(tasks)
    await asyncio.wait_for(a.leading.wait(), 5)
    # An operator (or a split brain) hands the lease to someone else with a long duration.
    await client.patch(LEASES, lease, {"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 60}},
                       "kube-system")
    await asyncio.wait_for(a.stopped.wait(), FAST["renew_deadline"] + FAST["retry_period"] + 2)
    assert a.cancelled and not a.elector.is_leader
    await asyncio.wait_for(run_a, 2)
    assert (await client.get(LEASES, lease, "kube-system"))["spec"]["holderIdentity"] == "intruder"


def test_timings_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        LeaderElector(None, "x", lease_duration=1, renew_deadline=2, retry_period=0.5)  # type: ignore[arg-type]
