"""A busy component's events: hundreds recorded at once are all written (several writers),
and repeats that arrive while the first is on its way end as one Event with the full count."""

from __future__ import annotations

import asyncio
import uuid

from tests.conftest import RunningServer

from bosun.api.registry import Resource, by_plural
from bosun.client.events import EventRecorder
from bosun.client.rest import Client

_events = by_plural("", "v1", "events")
assert _events is not None
EVENTS: Resource = _events


def fake_pod(name: str) -> dict[str, object]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4())}}


async def test_a_burst_of_distinct_events_is_written_in_full(api_server: RunningServer) -> None:
    tag = uuid.uuid4().hex[:6]
    async with Client.from_kubeconfig(api_server.kubeconfig) as c:
        rec = EventRecorder(c, f"burst-{tag}")
        pods = [fake_pod(f"b{tag}-{i}") for i in range(200)]
        for p in pods:
            rec.event(p, "Normal", "Scheduled", f"Successfully assigned default/{p['metadata']['name']} to n1")  # type: ignore[index]
        await asyncio.wait_for(rec.flush(), 30)
        await rec.close()
        evs = (await c.list(EVENTS, "default", field_selector=f"reportingComponent=burst-{tag}"))["items"]
        assert len(evs) == 200
        assert {e["involvedObject"]["uid"] for e in evs} == {p["metadata"]["uid"] for p in pods}  # type: ignore[index]


async def test_repeats_during_a_write_add_up_in_one_event(api_server: RunningServer) -> None:
    tag = uuid.uuid4().hex[:6]
    async with Client.from_kubeconfig(api_server.kubeconfig) as c:
        rec = EventRecorder(c, f"repeat-{tag}", writers=2)
        obj = fake_pod(f"r{tag}")
        for i in range(20):
            rec.event(obj, "Warning", "FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu.")
            if i % 4 == 0:
                await asyncio.sleep(0.01)  # let a write start while more repeats arrive
        await asyncio.wait_for(rec.flush(), 30)
        await rec.close()
        evs = (await c.list(EVENTS, "default", field_selector=f"reportingComponent=repeat-{tag}"))["items"]
        assert len(evs) == 1 and evs[0]["count"] == 20
