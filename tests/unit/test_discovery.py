"""Discovery documents as client-go reads them: every registry row must be found by kubectl.

The aggregated-discovery checks re-implement client-go's conversion rules
(discovery/aggregated_discovery.go): a resource or subresource without a responseKind is
dropped, "Namespaced" is the only namespaced scope, stale versions are failures.
"""

from __future__ import annotations

from typing import Any

import orjson

from bosun.api import discovery
from bosun.api.registry import RESOURCES, group_versions


def _split(agg: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """client-go's SplitGroupsAndResources: group/version -> legacy APIResource entries."""
    out: dict[str, list[dict[str, Any]]] = {}
    for g in agg["items"]:
        name = g["metadata"].get("name", "")
        for v in g["versions"]:
            assert v.get("freshness", "Current") != "Stale"
            gv = f"{name}/{v['version']}" if name else v["version"]
            rows = out.setdefault(gv, [])
            for r in v["resources"]:
                rk = r.get("responseKind") or {}
                parent = {"name": r["resource"], "namespaced": r["scope"] == "Namespaced",
                          "kind": rk.get("kind"), "verbs": r["verbs"],
                          "shortNames": r.get("shortNames", []),
                          "categories": r.get("categories", [])}
                if rk.get("kind"):
                    rows.append(parent)
                for s in r.get("subresources", []):
                    sk = s.get("responseKind") or {}
                    if sk.get("kind"):
                        rows.append({"name": f"{r['resource']}/{s['subresource']}",
                                     "kind": sk["kind"], "group": sk.get("group"),
                                     "version": sk.get("version"), "verbs": s["verbs"]})
    return out


def test_version_is_kubernetes_1_32_with_bosun_build() -> None:
    v = discovery.version_info()
    assert (v["major"], v["minor"]) == ("1", "32")
    assert v["gitVersion"].startswith("v1.32.0-bosun.")
    orjson.dumps(v)


def test_core_versions_and_group_list() -> None:
    assert discovery.core_versions()["versions"] == ["v1"]
    assert discovery.core_versions("10.0.0.1:6443")["serverAddressByClientCIDRs"][0][
        "serverAddress"] == "10.0.0.1:6443"
    groups = {g["name"]: g for g in discovery.api_groups()["groups"]}
    assert "" not in groups
    for g, versions in group_versions().items():
        if not g:
            continue
        assert [x["version"] for x in groups[g]["versions"]] == versions
        assert groups[g]["preferredVersion"]["groupVersion"] == f"{g}/{versions[0]}"
        assert discovery.group(g)["name"] == g  # type: ignore[index]
    assert discovery.group("nope.example.com") is None
    assert discovery.group("") is None


def test_every_group_version_resolves_with_every_resource() -> None:
    for r in RESOURCES:
        doc = discovery.resource_list(r.group, r.version)
        assert doc is not None
        assert doc["groupVersion"] == r.group_version
        by_name = {e["name"]: e for e in doc["resources"]}
        e = by_name[r.plural]
        assert e["kind"] == r.kind
        assert e["namespaced"] is r.namespaced
        assert e["singularName"] == r.singular
        assert e["verbs"] == list(r.verbs)
        assert e.get("shortNames", []) == list(r.short_names)
        assert e.get("categories", []) == list(r.categories)
        for sub in r.subresources:
            assert f"{r.plural}/{sub}" in by_name
    assert discovery.resource_list("apps", "v9") is None


def test_subresource_kinds_match_kube_apiserver() -> None:
    core = {e["name"]: e for e in discovery.resource_list("", "v1")["resources"]}  # type: ignore[index]
    apps = {e["name"]: e for e in discovery.resource_list("apps", "v1")["resources"]}  # type: ignore[index]
    assert core["pods/binding"]["kind"] == "Binding" and core["pods/binding"]["verbs"] == ["create"]
    ev = core["pods/eviction"]
    assert (ev["group"], ev["version"], ev["kind"]) == ("policy", "v1", "Eviction")
    assert core["pods/log"]["kind"] == "Pod" and core["pods/log"]["verbs"] == ["get"]
    assert core["pods/status"]["kind"] == "Pod"
    assert set(core["pods/status"]["verbs"]) == {"get", "patch", "update"}
    sc = apps["deployments/scale"]
    assert (sc["group"], sc["version"], sc["kind"]) == ("autoscaling", "v1", "Scale")


def test_aggregated_discovery_lists_every_resource_like_legacy() -> None:
    core = _split(discovery.aggregated(core=True))
    named = _split(discovery.aggregated(core=False))
    assert set(core) == {"v1"}
    assert "v1" not in named
    merged = {**core, **named}
    for r in RESOURCES:
        legacy = discovery.resource_list(r.group, r.version)
        assert legacy is not None
        agg = {e["name"]: e for e in merged[r.group_version]}
        for e in legacy["resources"]:
            assert e["name"] in agg, e["name"]
            assert agg[e["name"]]["kind"] == e["kind"]
            assert agg[e["name"]]["verbs"] == e["verbs"]
        top = agg[r.plural]
        assert top["namespaced"] is r.namespaced
        assert top["shortNames"] == list(r.short_names)
    assert discovery.aggregated(core=False, v2beta1=True)["apiVersion"] == (
        "apidiscovery.k8s.io/v2beta1")
    orjson.dumps(discovery.aggregated(core=False))


def test_accept_negotiation_follows_client_go_order() -> None:
    client_go = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                 "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                 "application/json")
    assert discovery.negotiate(client_go) == "v2"
    assert discovery.negotiate(
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList") == "v2beta1"
    assert discovery.negotiate("application/json, */*") is None
    assert discovery.negotiate("") is None
