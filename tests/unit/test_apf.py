"""API Priority and Fairness' parts alone: the classifier's matching rules, shuffle sharding's
deal, a priority level's seats and fair queues on a real event loop, requests' widths, and
seats lent and borrowed between levels."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bosun.api.apf.bootstrap import mandatory_flow_schemas, suggested_flow_schemas
from bosun.api.apf.borrowing import Integrator, Item, allocate, bounds
from bosun.api.apf.classify import Classifier, compile_schema
from bosun.api.apf.dispatcher import Dispatcher, process_share
from bosun.api.apf.inflight import InFlight
from bosun.api.apf.queueset import QueueSet, Rejected, Shape, deal
from bosun.api.apf.width import Work, estimate, level_max_seats
from bosun.api.catalog import BUILTIN
from bosun.api.errors import APIError
from bosun.api.target import decode
from bosun.security.identity import ADMIN, User, authenticated


def req(method: str, path: str, **query: str) -> Any:
    return decode(method, path, query, BUILTIN)


def classifier(*extra: dict[str, Any]) -> Classifier:
    objs = [*mandatory_flow_schemas(), *suggested_flow_schemas(), *extra]
    levels = {o["spec"]["priorityLevelConfiguration"]["name"] for o in objs}
    return Classifier((compile_schema(o) for o in objs), levels)


def schema(name: str, level: str, precedence: int, rule: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": name + "-uid"},
            "spec": {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence,
                     "distinguisherMethod": {"type": "ByNamespace"}, "rules": [rule]}}


def test_upstreams_schemas_sort_requests_as_kube_apiserver_does() -> None:
    c = classifier()
    node = authenticated("system:node:n1", "system:nodes")
    assert c.classify(ADMIN, req("GET", "/api/v1/pods"))[0].name == "exempt"
    assert c.classify(node, req("PUT", "/api/v1/nodes/n1/status"))[0].name == "system-node-high"
    assert c.classify(node, req("GET", "/api/v1/namespaces/a/pods"))[0].name == "system-nodes"
    assert c.classify(node, req("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"))[
        0].name == "system-node-high"
    sa = authenticated("system:serviceaccount:kube-system:foo", "system:serviceaccounts")
    assert c.classify(sa, req("GET", "/apis/coordination.k8s.io/v1/namespaces/x/leases/l"))[0].name == \
        "system-leader-election"
    found, flow = c.classify(sa, req("GET", "/api/v1/namespaces/x/pods"))
    assert (found.name, flow) == ("kube-system-service-accounts", "x")  # ByNamespace
    other = authenticated("system:serviceaccount:apps:web", "system:serviceaccounts")
    assert c.classify(other, req("GET", "/api/v1/pods"))[0].name == "service-accounts"
    alice = authenticated("alice")
    found, flow = c.classify(alice, req("GET", "/api/v1/pods"))
    assert (found.name, flow) == ("global-default", "alice")  # ByUser
    assert c.classify(alice, req("GET", "/healthz"))[0].name == "probes"
    assert c.classify(alice, req("POST", "/healthz"))[0].name == "global-default"


def test_rules_scope_subjects_and_url_prefixes() -> None:
    ns_only = schema("ns-only", "low", 10, {
        "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"namespace": "apps", "name": "*"}}],
        "resourceRules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods", "pods/log"],
                           "namespaces": ["apps"]}],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics/*"]}]})
    c = Classifier([compile_schema(o) for o in [ns_only, *mandatory_flow_schemas()]], {"low", "exempt", "catch-all"})
    web = User("system:serviceaccount:apps:web", ("system:serviceaccounts", "system:authenticated"))
    assert c.classify(web, req("GET", "/api/v1/namespaces/apps/pods"))[0].name == "ns-only"
    assert c.classify(web, req("GET", "/api/v1/namespaces/other/pods"))[0].name == "catch-all"
    assert c.classify(web, req("GET", "/api/v1/pods"))[0].name == "catch-all"  # cluster scope not allowed
    assert c.classify(web, req("GET", "/api/v1/namespaces/apps/pods/p"))[0].name == "catch-all"  # get, not list
    assert c.classify(web, req("GET", "/metrics"))[0].name == "ns-only"
    assert c.classify(web, req("GET", "/metrics/history"))[0].name == "ns-only"
    assert c.classify(web, req("GET", "/metricsx"))[0].name == "catch-all"
    stranger = User("system:serviceaccount:other:web", ("system:authenticated",))
    assert c.classify(stranger, req("GET", "/api/v1/namespaces/apps/pods"))[0].name == "catch-all"


def test_a_schema_naming_a_missing_level_is_skipped_and_ties_go_by_name() -> None:
    everyone = {"subjects": [{"kind": "Group", "group": {"name": "system:authenticated"}}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}
    objs = [schema("b", "low", 5, everyone), schema("a", "gone", 5, everyone), schema("c", "low", 5, everyone)]
    c = Classifier([compile_schema(o) for o in objs], {"low"})
    assert c.classify(authenticated("x"), req("GET", "/version"))[0].name == "b"


def test_deal_gives_distinct_stable_hands() -> None:
    for h in (0, 1, 12345, 2**63 - 1, 987654321987):
        hand = deal(h, 64, 6)
        assert len(set(hand)) == 6 and all(0 <= i < 64 for i in hand)
        assert deal(h, 64, 6) == hand
    assert sorted(deal(5, 4, 4)) == [0, 1, 2, 3]
    hands = {tuple(sorted(deal(h * 7919, 128, 6))) for h in range(200)}
    assert len(hands) > 190  # flows rarely share a whole hand


def test_process_share_splits_the_limit_over_the_api_processes() -> None:
    assert process_share(600, 1) == 600
    assert process_share(600, 2) == 300
    assert process_share(5, 2) == 3
    assert process_share(1, 4) == 1


async def test_reject_level_refuses_once_its_seats_are_taken() -> None:
    qs = QueueSet(Shape(2))
    assert qs.try_take() and qs.try_take() and not qs.try_take()
    with pytest.raises(Rejected) as exc:
        await qs.wait(1, 1.0)
    assert exc.value.reason == "concurrency-limit"
    qs.release()
    assert qs.try_take()


async def test_queue_full_and_time_out() -> None:
    qs = QueueSet(Shape(1, queues=1, hand_size=1, queue_length_limit=1))
    assert qs.try_take()
    first = asyncio.create_task(qs.wait(1, 5.0))
    await asyncio.sleep(0)
    with pytest.raises(Rejected) as exc:
        await qs.wait(2, 5.0)
    assert exc.value.reason == "queue-full"
    qs.release()
    await first  # given the freed seat
    assert qs.in_use == 1 and qs.queued == 0
    with pytest.raises(Rejected) as exc:
        await qs.wait(3, 0.05)
    assert exc.value.reason == "time-out" and qs.queued == 0


async def test_a_cancelled_wait_leaves_the_queue() -> None:
    qs = QueueSet(Shape(1, queues=4, hand_size=2, queue_length_limit=5))
    assert qs.try_take()
    waiting = asyncio.create_task(qs.wait(9, 5.0))
    await asyncio.sleep(0)
    assert qs.queued == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert qs.queued == 0
    qs.release()
    assert qs.in_use == 0


async def test_fair_queuing_alternates_between_flows() -> None:
    """A flow with eight requests queued does not starve one that queues two behind them."""
    qs = QueueSet(Shape(1, queues=8, hand_size=1, queue_length_limit=50))
    heavy, light = 1, 2
    assert deal(heavy, 8, 1) != deal(light, 8, 1)
    assert qs.try_take()
    order: list[str] = []

    async def one(flow: int, name: str) -> None:
        await qs.wait(flow, 5.0)
        order.append(name)

    tasks = [asyncio.create_task(one(heavy, f"h{i}")) for i in range(8)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(one(light, f"l{i}")) for i in range(2)]
    await asyncio.sleep(0)
    for _ in range(10):
        qs.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order.index("l1") < 4, order


async def test_dispatcher_counts_what_it_refuses_and_keeps_seats_through_an_update() -> None:
    level = {"metadata": {"name": "one", "uid": "u1"},
             "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1,
                                                     "limitResponse": {"type": "Reject"}}}}
    big = {"metadata": {"name": "big", "uid": "u2"},
           "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 99,
                                                   "limitResponse": {"type": "Reject"}}}}
    everyone = schema("all", "one", 10, {"subjects": [{"kind": "Group", "group": {"name": "*"}}],
                                          "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]})
    d = Dispatcher(10)
    d.configure([everyone], [level, big])
    assert d.nominal.values == {("one",): 1, ("big",): 10}
    flow = d.classify(authenticated("x"), req("GET", "/version"))
    assert flow is not None and flow.schema.uid == "all-uid" and flow.level.uid == "u1"
    assert d.admit_now(flow)
    d.configure([everyone], [level, big])  # an update keeps the seat taken
    second = d.classify(authenticated("y"), req("GET", "/version"))
    assert second is not None and not d.admit_now(second)
    with pytest.raises(APIError) as refused:
        await d.admit(second)
    assert refused.value.code == 429 and refused.value.headers == {"Retry-After": "1"}
    assert d.rejected.values == {("all", "one", "concurrency-limit"): 1}
    d.done(flow)
    assert d.admit_now(second)
    assert d.dispatched.values == {("all", "one"): 2}


class _Counts:
    def __init__(self, objects: int, watches: int) -> None:
        self._objects = objects
        self._watches = watches

    def objects(self, group_plural: str) -> int:
        return self._objects if group_plural == "configmaps" else 0

    def watches(self, group_plural: str) -> int:
        return self._watches if group_plural == "configmaps" else 0


def test_widths_are_upstreams_work_estimates() -> None:
    many = _Counts(250, 35)
    cms = "/api/v1/namespaces/a/configmaps"
    assert estimate(req("GET", cms), {}, many, 0) == Work(3)  # 250 objects from the cache: ceil(2.5)
    assert estimate(req("GET", cms, limit="50"), {"limit": "50"}, many, 0) == Work(3)  # the cache reads them all
    # A continuation is read from the store: twice the page, or the count plus the page with a selector.
    assert estimate(req("GET", cms), {"limit": "50", "continue": "x"}, many, 0) == Work(1)
    assert estimate(req("GET", cms), {"limit": "200", "continue": "x", "labelSelector": "a=b"}, many, 0) == Work(5)
    assert estimate(req("GET", cms), {}, _Counts(5000, 0), 0) == Work(10)  # at most 10
    assert estimate(req("GET", cms), {}, _Counts(5000, 0), 4) == Work(4)  # or the level's widest
    assert estimate(req("GET", cms), {"limit": "x"}, many, 0) == Work(10)
    assert estimate(req("GET", cms + "/one"), {}, many, 0) == Work(1)  # a get
    assert estimate(req("GET", "/api/v1/namespaces/a/pods"), {}, many, 0) == Work(1)  # no pods held
    # 35 watches of configmaps: 4 seats for 5 ms after a write ends; capped at 2, held longer.
    assert estimate(req("POST", cms), {}, many, 0) == Work(1, 4, 0.005)
    capped = estimate(req("PUT", cms + "/one"), {}, many, 2)
    assert (capped.initial, capped.final, capped.seats) == (1, 2, 2) and capped.latency == pytest.approx(0.01)
    assert estimate(req("POST", cms), {}, _Counts(0, 9), 0) == Work(1)  # fewer than 10 watches
    assert estimate(req("GET", cms, watch="1"), {"watch": "1"}, many, 0) == Work(1)
    # workload-high at the default 600 seats: ceil(15% of 98) = 15 (the estimate caps it at 10).
    assert level_max_seats(98, 6) == 15 and level_max_seats(1, 6) == 1 and level_max_seats(30, 6) == 5


async def test_a_wide_request_waits_for_all_its_seats_and_nobody_jumps_ahead() -> None:
    qs = QueueSet(Shape(3, queues=1, hand_size=1, queue_length_limit=10))
    assert qs.try_take(2)
    assert not qs.try_take(2)  # 2 + 2 > 3
    wide = asyncio.create_task(qs.wait(1, 5.0, seats=2))
    await asyncio.sleep(0)
    narrow = asyncio.create_task(qs.wait(1, 5.0, seats=1))  # one seat is free, but the wide one is first
    await asyncio.sleep(0.01)
    assert not wide.done() and not narrow.done() and qs.queued_seats == 3
    qs.release(2)
    await asyncio.sleep(0.01)
    assert wide.done() and narrow.done() and qs.in_use == 3
    qs.release(2)
    qs.release(1)
    # Wider than the whole limit: it runs, but alone.
    assert qs.try_take(5) and not qs.try_take(1)
    qs.release(5)
    assert qs.try_take(1) and not qs.try_take(5)


def test_bounds_and_the_allocation_follow_upstream() -> None:
    assert bounds(600, 30, 245, 33, None) == bounds(600, 30, 245, 33, None)
    b = bounds(600, 100, 245, 90, None)  # workload-low: ceil(244.9) = 245 nominal, lends 90%
    assert (b.nominal, b.lower, b.upper) == (245, 24, 845)
    b = bounds(10, 1, 4, 50, 100)  # ceil(2.5) = 3; lends round(1.5) = 2 (half away from zero); borrows 3
    assert (b.nominal, b.lower, b.upper) == (3, 1, 6)
    # An idle lender and a busy borrower: the borrower gets its upper bound, the lender the rest.
    found = allocate(10, [Item(0, 5, 0), Item(5, 8, 8)])
    assert found is not None
    allocs, _ = found
    assert allocs[1] == pytest.approx(8) and allocs[0] == pytest.approx(2)
    assert allocate(10, [Item(6, 6, 6), Item(6, 6, 6)]) is None  # the bounds cannot sum to it


async def test_the_integrator_weighs_demand_by_time() -> None:
    i = Integrator()
    i.set(4)
    await asyncio.sleep(0.2)
    i.set(0)
    await asyncio.sleep(0.2)
    duration, avg, dev, high = i.reset()
    assert duration >= 0.4 and high == 4
    assert avg == pytest.approx(4 * 0.2 / duration, rel=0.2) and dev == pytest.approx(2, rel=0.2)
    i.set(3)
    assert i.reset()[3] == 3 and i.reset()[3] == 3  # the next period starts at the current value


async def test_a_busy_level_borrows_what_an_idle_one_lends() -> None:
    def level(name: str, shares: int, **limited: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, "uid": name},
                "spec": {"type": "Limited", "limited": {
                    "nominalConcurrencyShares": shares, **limited,
                    "limitResponse": {"type": "Queue", "queuing": {"queues": 1, "handSize": 1,
                                                                   "queueLengthLimit": 10}}}}}
    everyone = schema("all", "busy", 10, {"subjects": [{"kind": "Group", "group": {"name": "*"}}],
                                           "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]})
    d = Dispatcher(8)
    d.configure([everyone], [level("busy", 1, lendablePercent=0, borrowingLimitPercent=100),
                             level("other", 1, lendablePercent=50, borrowingLimitPercent=100)])
    busy = d.levels["busy"]
    assert (busy.bounds.nominal, busy.bounds.lower, busy.bounds.upper) == (4, 4, 8)
    assert d.lower.values[("other",)] == 2
    # Both idle: the 8 seats go by the lower bounds (4 and 2), 5 and 3.
    assert d.current.values == {("busy",): 5, ("other",): 3}
    flows = [d.classify(authenticated(f"u{i}"), req("GET", "/version")) for i in range(7)]
    running = [f for f in flows if f is not None and d.admit_now(f)]
    waiting = [asyncio.create_task(d.admit(f)) for f in flows if f is not None and f not in running]
    await asyncio.sleep(0.05)
    assert len(running) == 5 and busy.seats.queued == 2
    # A demand of 7 for the period against the other's 0: it lends down to its lower bound, 2.
    d.adjust()
    await asyncio.sleep(0)
    assert d.current.values == {("busy",): 6, ("other",): 2}
    assert busy.seats.in_use == 6 and busy.seats.queued == 1
    assert d.demand_high.values[("busy",)] == 7 and d.target_seats.values[("busy",)] > 6
    for f in running:
        d.done(f)
    await asyncio.gather(*waiting)


def test_max_in_flight_counts_reads_and_writes_apart_and_lets_masters_and_watches_by() -> None:
    limit = InFlight(1, 1)
    alice = authenticated("alice")
    read = limit.take(req("GET", "/api/v1/pods"), alice)
    write = limit.take(req("POST", "/api/v1/namespaces/a/pods"), alice)
    assert (read, write) == ("readOnly", "mutating")
    for method, path in (("GET", "/api/v1/namespaces/a/pods/p"), ("DELETE", "/api/v1/namespaces/a/pods/p")):
        with pytest.raises(APIError) as refused:
            limit.take(req(method, path), alice)
        assert refused.value.code == 429 and refused.value.headers == {"Retry-After": "1"}
    assert limit.take(req("GET", "/api/v1/pods/p"), ADMIN) is None  # served, not counted
    assert limit.take(req("GET", "/api/v1/pods", watch="true"), alice) is None
    assert limit.take(req("GET", "/api/v1/namespaces/a/pods/p/log"), alice) is None
    assert limit.dropped.values == {("readOnly",): 1, ("mutating",): 1}
    limit.release("readOnly")
    assert limit.take(req("GET", "/version"), alice) == "readOnly"
