"""The incremental policy state: a change recomputes only the pods it concerns, and the
result always equals the full computation's (rules.pod_rules + render.wanted)."""

from __future__ import annotations

import copy
import random
from typing import Any

from bosun.network.policy import render
from bosun.network.policy.incremental import IncrementalRules
from bosun.network.policy.rules import pod_rules

Obj = dict[str, Any]
NAMESPACES = [{"metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n, "team": t}}}
              for n, t in (("shop", "a"), ("other", "b"))]


def pod(i: int, ns: str, app: str, node: str) -> Obj:
    return {"metadata": {"name": f"p{i}", "namespace": ns, "uid": f"uid-{i}", "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8000 + i % 3}]}]},
            "status": {"phase": "Running", "podIP": f"10.244.{1 if node == 'n1' else 2}.{i + 2}"}}


def policy(name: str, ns: str, spec: Obj, rv: int = 1) -> Obj:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"pol-{ns}-{name}", "resourceVersion": str(rv)},
            "spec": spec}


DENY_DB = policy("db", "shop", {"podSelector": {"matchLabels": {"app": "db"}},
                                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]})
WEB_OUT = policy("web", "shop", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                                 "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]})


def full(pods: list[Obj], policies: list[Obj]) -> render.Wanted:
    local = [p for p in pods if p["spec"]["nodeName"] == "n1"]
    return render.wanted(pod_rules(local, pods, NAMESPACES, policies))


def step(inc: IncrementalRules, pods: list[Obj], policies: list[Obj]) -> render.Wanted:
    local = [p for p in pods if p["spec"]["nodeName"] == "n1"]
    return inc.wanted(local, pods, NAMESPACES, policies)


def test_a_pod_change_recomputes_only_the_pods_it_concerns() -> None:
    pods = [pod(0, "shop", "db", "n1"), pod(1, "shop", "web", "n1"), pod(2, "shop", "cache", "n1"),
            pod(3, "shop", "api", "n2")]
    inc = IncrementalRules()
    step(inc, pods, [DENY_DB, WEB_OUT])
    assert sorted(inc.recomputed) == ["uid-0", "uid-1", "uid-2"]
    # nothing changed: nothing is recomputed
    assert step(inc, pods, [DENY_DB, WEB_OUT]) == full(pods, [DENY_DB, WEB_OUT])
    assert inc.recomputed == []
    # a pod becomes ready (status only): nothing a rule depends on
    pods[3]["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    step(inc, pods, [DENY_DB, WEB_OUT])
    assert inc.recomputed == []
    # a second api pod gets an address: only db's ingress peers change, so only db is rebuilt
    pods.append(pod(4, "shop", "api", "n2"))
    assert step(inc, pods, [DENY_DB, WEB_OUT]) == full(pods, [DENY_DB, WEB_OUT])
    assert inc.recomputed == ["uid-0"]
    # the unselected cache pod is relabelled web: it alone is rebuilt (db's peers stay the same)
    pods[2]["metadata"]["labels"] = {"app": "web"}
    assert step(inc, pods, [DENY_DB, WEB_OUT]) == full(pods, [DENY_DB, WEB_OUT])
    assert inc.recomputed == ["uid-2"]
    # the egress policy changes: the web pods it selects are rebuilt, db is not
    web_out = policy("web", "shop", {**WEB_OUT["spec"], "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]},
                     rv=2)
    assert step(inc, pods, [DENY_DB, web_out]) == full(pods, [DENY_DB, web_out])
    assert sorted(inc.recomputed) == ["uid-1", "uid-2"]


POLICY_SPECS: list[Obj] = [
    {"podSelector": {"matchLabels": {"app": "db"}},
     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]},
                 {"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]},
    {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
     "ingress": [{"ports": [{"port": "http"}, {"port": 9000, "endPort": 9010, "protocol": "UDP"}]}],
     "egress": [{"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}]},
                {"ports": [{"port": "http"}]}]},
    {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
     "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}},
                         "namespaceSelector": {}}], "ports": [{"port": "http"}]}]},
    {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "cache"]}]}},
]


def test_random_changes_match_a_full_recompute() -> None:
    rng = random.Random(20261207)
    apps, namespaces = ["db", "api", "web", "cache"], ["shop", "other"]
    pods = [pod(i, rng.choice(namespaces), rng.choice(apps), rng.choice(["n1", "n2"])) for i in range(12)]
    policies: list[Obj] = []
    rv = 1
    inc = IncrementalRules()
    for n in range(200):
        change = rng.randrange(7)
        if change == 0 or not pods:
            pods.append(pod(100 + n, rng.choice(namespaces), rng.choice(apps), rng.choice(["n1", "n2"])))
        elif change == 1:
            pods.remove(rng.choice(pods))
        elif change == 2:
            rng.choice(pods)["metadata"]["labels"] = {"app": rng.choice(apps)}
        elif change == 3:
            p = rng.choice(pods)
            p["status"]["podIP"] = "" if rng.random() < 0.3 else f"10.244.3.{rng.randrange(2, 250)}"
        elif change == 4:
            p = rng.choice(pods)
            p["spec"]["containers"][0]["ports"][0]["containerPort"] = rng.randrange(8000, 8004)
        elif change == 5 and policies and rng.random() < 0.3:
            policies.remove(rng.choice(policies))
        else:
            rv += 1
            name = f"pol{rng.randrange(5)}"
            ns = rng.choice(namespaces)
            policies = [p for p in policies if (p["metadata"]["name"], p["metadata"]["namespace"]) != (name, ns)]
            policies.append(policy(name, ns, copy.deepcopy(rng.choice(POLICY_SPECS)), rv))
        got = step(inc, pods, policies)
        assert got == full(pods, policies), f"after change {n}"
        assert render.transaction(got, full(pods, policies)) == []


def test_without_policies_nothing_is_computed_and_a_first_policy_still_applies() -> None:
    pods = [pod(0, "shop", "db", "n1"), pod(1, "shop", "web", "n1"), pod(3, "shop", "api", "n2")]
    inc = IncrementalRules()
    assert step(inc, pods, [DENY_DB]) == full(pods, [DENY_DB])
    # the last policy goes: no pod is isolated any more, and no pod's rules are rebuilt
    assert step(inc, pods, []) == full(pods, []) == render.wanted([])
    assert inc.recomputed == []
    pods.append(pod(4, "shop", "api", "n2"))
    assert step(inc, pods, []) == full(pods, [])
    # a policy comes back: what it selects is computed from scratch, as the full computation says
    assert step(inc, pods, [DENY_DB, WEB_OUT]) == full(pods, [DENY_DB, WEB_OUT])
    assert sorted(inc.recomputed) == ["uid-0", "uid-1"]
