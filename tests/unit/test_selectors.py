"""Label and field selectors: the syntax kubectl users type, Kubernetes' errors, and matching."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.helpers import must_by_kind

from bosun.api.selectors import (
    SelectorError,
    check_field_selector,
    label_selector_from_dict,
    label_selector_text,
    parse_field_selector,
    parse_label_selector,
)

WEB = {"app": "web", "tier": "front", "version": "3"}
DB = {"app": "db", "tier": "back"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize("text, web, db, bare", [
    ("", True, True, True),
    ("app=web", True, False, False),
    ("app==web", True, False, False),
    ("app!=web", False, True, True),
    ("app in (web, db)", True, True, False),
    ("app notin (web)", False, True, True),
    ("tier", True, True, False),
    ("!tier", False, False, True),
    ("app=web,tier=front", True, False, False),
    ("app=web,tier=back", False, False, False),
    ("version>2", True, False, False),
    ("version<3", False, False, False),
    ("  app = web ,  tier  ", True, False, False),
    ("example.com/role", False, False, False),
])
def test_label_selector_matching(text: str, web: bool, db: bool, bare: bool) -> None:
    sel = parse_label_selector(text)
    assert (sel.matches(WEB), sel.matches(DB), sel.matches(BARE)) == (web, db, bare)


def test_label_selector_canonical_string() -> None:
    assert str(parse_label_selector("tier notin (b,a),app=web,!x")) == "app=web,tier notin (a,b),!x"


@pytest.mark.parametrize("text, message", [
    ("app in web", "unable to parse requirement: found 'web' expected: '('"),
    ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
    ("app=web,", "found '', expected: identifier after ','"),
    ("=web", "found '=', expected: !, identifier, or 'end of string'"),
    ("app web", "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("app=web=x", "found '=', expected: ',' or 'end of string'"),
    ("app=-bad", 'unable to parse requirement: values[0][-bad]: Invalid value: "-bad"'),
    ("-bad=x", 'unable to parse requirement: key: Invalid value: "-bad"'),
    ("n>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
])
def test_label_selector_errors_read_like_kubernetes(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as e:
        parse_label_selector(text)
    assert message in str(e.value)


def test_label_selector_from_dict_semantics() -> None:
    assert not label_selector_from_dict(None).matches(WEB)
    assert label_selector_from_dict({}).matches(WEB)
    sel = label_selector_from_dict({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "version", "operator": "Exists"},
            {"key": "zone", "operator": "NotIn", "values": ["a"]},
        ],
    })
    assert sel.matches(WEB)
    assert not sel.matches({**WEB, "canary": "1"})
    assert not sel.matches(DB)
    assert str(sel) == "app=web,!canary,tier in (edge,front),version,zone notin (a)"
    with pytest.raises(SelectorError, match='"Gt" is not a valid label selector operator'):
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})


POD_RUNNING = {"metadata": {"name": "p1", "namespace": "default"},
               "spec": {"nodeName": "n1", "restartPolicy": "Always", "hostNetwork": True},
               "status": {"phase": "Running", "podIP": "10.0.0.1"}}
POD_PENDING = {"metadata": {"name": "p2", "namespace": "other"}, "spec": {}, "status": {"phase": "Pending"}}


@pytest.mark.parametrize("text, running, pending", [
    ("", True, True),
    ("metadata.name=p1", True, False),
    ("metadata.namespace!=default", False, True),
    ("spec.nodeName=", False, True),
    ("spec.nodeName!=", True, False),
    ("status.phase==Running,spec.nodeName=n1", True, False),
    ("status.phase!=Running,status.phase!=Succeeded", False, True),
    ("spec.hostNetwork=true", True, False),
    ("spec.hostNetwork=false", False, True),
    ("status.podIP=10.0.0.1", True, False),
])
def test_field_selector_matching(text: str, running: bool, pending: bool) -> None:
    sel = parse_field_selector(text)
    assert (sel.matches(POD_RUNNING), sel.matches(POD_PENDING)) == (running, pending)


def test_field_selector_escapes_and_events() -> None:
    sel = parse_field_selector(r"involvedObject.name=a\,b,involvedObject.kind=Pod")
    ev = {"involvedObject": {"kind": "Pod", "name": "a,b"}, "type": "Warning"}
    assert sel.matches(ev)
    assert not sel.matches({"involvedObject": {"kind": "Pod", "name": "a"}})
    assert parse_field_selector("type=Warning").matches(ev)


def test_field_selector_bad_syntax() -> None:
    with pytest.raises(SelectorError) as e:
        parse_field_selector("status.phase")
    assert str(e.value) == "invalid selector: 'status.phase'; can't understand 'status.phase'"


def test_unsupported_field_label_is_refused_per_kind() -> None:
    pods, nodes, secrets = must_by_kind("v1", "Pod"), must_by_kind("v1", "Node"), must_by_kind("v1", "Secret")
    check_field_selector(pods, parse_field_selector("spec.nodeName=n1,status.phase=Running,metadata.name=x"))
    check_field_selector(nodes, parse_field_selector("spec.unschedulable=false"))
    check_field_selector(secrets, parse_field_selector("type=kubernetes.io/tls"))
    with pytest.raises(SelectorError) as e:
        check_field_selector(pods, parse_field_selector("spec.foo=bar"))
    assert str(e.value) == "field label not supported: spec.foo"
    with pytest.raises(SelectorError) as e:
        check_field_selector(secrets, parse_field_selector("spec.nodeName=x"))
    assert str(e.value) == "field label not supported: spec.nodeName"
    node = {"metadata": {"name": "n"}, "spec": {}}
    assert parse_field_selector("spec.unschedulable=false").matches(node)


def test_matching_ten_thousand_objects() -> None:
    label_sel = parse_label_selector("app in (web,api),tier!=back,!canary")
    field_sel = parse_field_selector("status.phase=Running,spec.nodeName!=")
    objs: list[dict[str, Any]] = [
        {"metadata": {"name": f"p{i}", "labels": {"app": "web" if i % 2 else "db", "tier": "front"}},
         "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
        for i in range(10_000)
    ]
    hits = len([o for o in objs if label_sel.matches(o["metadata"]["labels"]) and field_sel.matches(o)])
    assert hits == 5_000


def test_a_label_selector_object_as_text_selects_what_the_object_selects() -> None:
    sel = {"matchLabels": {"tier": "front", "app": "web"},
           "matchExpressions": [{"key": "version", "operator": "In", "values": ["3", "4"]},
                                {"key": "canary", "operator": "DoesNotExist"},
                                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                                {"key": "tier", "operator": "Exists"}]}
    text = label_selector_text(sel)
    assert text == "app=web,tier=front,version in (3,4),!canary,env notin (dev),tier"
    assert parse_label_selector(text) == label_selector_from_dict(sel)
    assert label_selector_text(None) == label_selector_text({}) == ""
