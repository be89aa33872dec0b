"""API Priority and Fairness' parts alone: the classifier's matching rules, shuffle sharding's
deal, and a priority level's seats and fair queues on a real event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bosun.api.apf.bootstrap import mandatory_flow_schemas, suggested_flow_schemas
from bosun.api.apf.classify import Classifier, compile_schema
from bosun.api.apf.dispatcher import Dispatcher, process_share
from bosun.api.apf.queueset import QueueSet, Rejected, Shape, deal
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
