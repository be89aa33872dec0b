"""Event recording as `kubectl describe` users see it: one Event per repeated occurrence,
with a growing count."""

from __future__ import annotations

from tests.conftest import RunningServer

from bosun.api.registry import by_plural
from bosun.client.events import EventRecorder
from bosun.client.rest import Client

EVENTS = by_plural("", "v1", "events")
CMS = by_plural("", "v1", "configmaps")
assert EVENTS and CMS


async def test_repeated_events_aggregate_into_one_with_count(api_server: RunningServer) -> None:
    async with Client.from_kubeconfig(api_server.kubeconfig) as c:
        obj = await c.create(CMS, {"metadata": {"generateName": "ev-"}, "data": {}}, "default")
        rec = EventRecorder(c, "test-controller")
        for _ in range(3):
            rec.event(obj, "Warning", "FailedCreate", "quota exceeded")
        rec.event(obj, "Normal", "Synced", "all good")
        await rec.flush()
        await rec.close()
        name = obj["metadata"]["name"]
        evs = (await c.list(EVENTS, "default", field_selector=f"involvedObject.name={name}"))["items"]
        by_reason = {e["reason"]: e for e in evs}
        assert set(by_reason) == {"FailedCreate", "Synced"}
        failed = by_reason["FailedCreate"]
        assert failed["count"] == 3 and failed["type"] == "Warning" and failed["message"] == "quota exceeded"
        assert failed["involvedObject"]["uid"] == obj["metadata"]["uid"]
        assert failed["source"]["component"] == "test-controller"
        assert by_reason["Synced"]["count"] == 1


async def test_spam_filter_limits_events_per_object_and_reason(api_server: RunningServer) -> None:
    async with Client.from_kubeconfig(api_server.kubeconfig) as c:
        obj = await c.create(CMS, {"metadata": {"generateName": "spam-"}, "data": {}}, "default")
        rec = EventRecorder(c, "test-controller")
        for i in range(40):  # distinct messages: no aggregation, only the spam filter
            rec.event(obj, "Normal", "SuccessfulCreate", f"Created pod: p{i}")
        rec.event(obj, "Warning", "FailedCreate", "another reason has its own budget")
        await rec.flush()
        await rec.close()
        name = obj["metadata"]["name"]
        evs = (await c.list(EVENTS, "default", field_selector=f"involvedObject.name={name}"))["items"]
        reasons = [e["reason"] for e in evs]
        assert reasons.count("SuccessfulCreate") == 25 and reasons.count("FailedCreate") == 1
