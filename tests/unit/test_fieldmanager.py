"""Field ownership rules alone: what an update takes over, what an apply declares, merges,
removes and conflicts on, and the FieldsV1 form."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from bosun.api.fieldmanager import Conflicts, apply, track_update
from bosun.api.fieldmanager.fields import diff, fields_of, leaves, value_at
from bosun.api.fieldmanager.paths import ITEM, from_fields, render, to_fields, trie_with, trie_without
from bosun.api.patch.schema import schema_for

POD = schema_for("", "Pod")


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def owners(obj: dict[str, Any]) -> dict[tuple[str, str, str], set[str]]:
    return {(e["manager"], e["operation"], e.get("subresource", "")):
            {render(p) for p in from_fields(e["fieldsV1"])} for e in obj["metadata"]["managedFields"]}


def test_fieldsv1_round_trip() -> None:
    fields = {"f:metadata": {"f:labels": {"f:a": {}}},
              "f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}}}},
              "f:finalizers": {'v:"x"': {}}}
    assert to_fields(from_fields(fields)) == fields


def test_create_gives_every_field_to_its_creator_and_updates_take_over_what_they_change() -> None:
    created = pod()
    track_update(None, created, POD, "alice")
    assert owners(created) == {("alice", "Update", ""): {
        ".metadata.labels.a", '.spec.containers[name="c"]', '.spec.containers[name="c"].name',
        '.spec.containers[name="c"].image'}}
    changed = copy.deepcopy(created)
    changed["spec"]["containers"][0]["image"] = "nginx"
    changed["metadata"]["labels"]["b"] = "2"
    track_update(created, changed, POD, "bob")
    got = owners(changed)
    assert got[("bob", "Update", "")] == {'.spec.containers[name="c"].image', ".metadata.labels.b"}
    assert '.spec.containers[name="c"].image' not in got[("alice", "Update", "")]
    # A status write is its own manager set, and touches nobody's spec.
    status = copy.deepcopy(changed)
    status["status"] = {"phase": "Running"}
    track_update(changed, status, POD, "kubelet", "status")
    assert owners(status)[("kubelet", "Update", "status")] == {".status.phase"}
    # Nothing changed: nobody's ownership or timestamp moves.
    again = copy.deepcopy(status)
    track_update(status, again, POD, "carol")
    assert again["metadata"]["managedFields"] == status["metadata"]["managedFields"]


def test_apply_merges_lists_by_key_and_removes_what_its_manager_dropped() -> None:
    first = apply(None, pod(), POD, "ci", force=False)
    config = pod()
    config["spec"]["containers"].append({"name": "side", "image": "x"})
    del config["metadata"]["labels"]
    second = apply(first, config, POD, "ci", force=False)
    assert [c["name"] for c in second["spec"]["containers"]] == ["c", "side"]
    assert "labels" not in second["metadata"]
    # A container another manager added survives ci's apply, which does not mention it.
    other = copy.deepcopy(second)
    other["spec"]["containers"].append({"name": "added", "image": "y"})
    track_update(second, other, POD, "admin")
    third = apply(other, config, POD, "ci", force=False)
    assert [c["name"] for c in third["spec"]["containers"]] == ["c", "side", "added"]


def test_conflicts_name_fields_and_managers_and_force_takes_them() -> None:
    live = apply(None, pod(), POD, "ci", force=False)
    config = pod()
    config["spec"]["containers"][0]["image"] = "nginx"
    with pytest.raises(Conflicts) as exc:
        apply(live, config, POD, "cd", force=False)
    assert str(exc.value) == ('Apply failed with 1 conflict: conflict with "ci" using v1: '
                              '.spec.containers[name="c"].image')
    assert exc.value.causes() == [{"reason": "FieldManagerConflict", "message": 'conflict with "ci" using v1',
                                   "field": '.spec.containers[name="c"].image'}]
    forced = apply(live, config, POD, "cd", force=True)
    assert forced["spec"]["containers"][0]["image"] == "nginx"
    assert '.spec.containers[name="c"].image' not in owners(forced)[("ci", "Apply", "")]
    # Same value: co-owned, no conflict.
    same = apply(live, pod(), POD, "cd", force=False)
    assert '.spec.containers[name="c"].image' in owners(same)[("cd", "Apply", "")]


def _pod_variant(rnd: random.Random) -> dict[str, Any]:
    """A pod with a random selection of the shapes ownership reads differently: maps, keyed
    lists, set lists, atomic lists, nulls, empty maps, and a field that changes shape."""
    containers = [{"name": f"c{i}", "image": rnd.choice(["busybox", "nginx"]),
                   "ports": [{"containerPort": p, "protocol": "TCP"}
                             for p in rnd.sample([80, 443, 8080], rnd.randint(0, 2))],
                   "args": rnd.sample(["a", "b", "c"], rnd.randint(0, 2)),
                   "env": [{"name": "X", "value": rnd.choice(["1", "2"])}] if rnd.random() < 0.5 else None}
                  for i in rnd.sample(range(3), rnd.randint(1, 3))]
    labels = {k: rnd.choice(["1", "2"]) for k in rnd.sample(["a", "b", "c"], rnd.randint(0, 3))}
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "p", "labels": labels,
                                        "finalizers": rnd.sample(["x", "y", "z"], rnd.randint(0, 3))},
                           "spec": {"containers": containers,
                                    "nodeSelector": rnd.choice([None, {}, {"zone": "a"}, "not-a-map"])}}
    if rnd.random() < 0.5:
        obj["status"] = {"phase": rnd.choice(["Pending", "Running"]),
                         "conditions": [{"type": t, "status": rnd.choice(["True", "False"])}
                                        for t in rnd.sample(["Ready", "Initialized"], rnd.randint(0, 2))]}
    return obj


def test_incremental_ownership_agrees_with_comparing_every_leaf() -> None:
    """The write path diffs two objects without listing their leaves and edits the stored
    trie in place; both must say exactly what listing every leaf would."""
    rnd = random.Random(7)
    for _ in range(400):
        old, new = _pod_variant(rnd), _pod_variant(rnd)
        before, after = leaves(old, POD), leaves(new, POD)
        want_changed = (after - before) | {p for p in before & after
                                           if p[-1] != ITEM and value_at(old, p) != value_at(new, p)}
        assert diff(old, new, POD) == (want_changed, before - after)
        assert fields_of(new, POD) == to_fields(after)
        trie = to_fields(before)
        gone = set(rnd.sample(sorted(before | after), min(5, len(before | after))))
        assert trie_without(trie, gone) == to_fields(before - gone)
        assert trie_with(trie, after) == to_fields(before | after)
        assert trie == to_fields(before)  # the stored trie is shared: edits copy it


def test_updates_by_several_managers_keep_fields_apart() -> None:
    rnd = random.Random(11)
    obj = _pod_variant(rnd)
    track_update(None, obj, POD, "m0")
    for i in range(60):
        new = _pod_variant(rnd)
        track_update(obj, new, POD, f"m{i % 3}")
        entries = new.get("metadata", {}).get("managedFields") or []
        sets = [from_fields(e["fieldsV1"]) for e in entries]
        assert all(a.isdisjoint(b) for j, a in enumerate(sets) for b in sets[j + 1:])
        assert set().union(*sets) <= leaves({k: v for k, v in new.items() if k not in ("apiVersion", "kind")}, POD)
        obj = new


@pytest.mark.parametrize("value", ["c", "my-app", "/var/run", "a b", 'say "hi"', "back\\slash", "tab\there", "\x7f",
                                   "é", "日本", "", 0, 8080, -1, 2**70, True, None, 1.5, ["x"], {"k": 1}])
def test_item_keys_are_compact_json_whatever_the_value(value: Any) -> None:
    """``k:`` elements are upstream's compact JSON (ASCII-escaped): the plain names and
    numbers that keys usually hold take a shortcut, which must write the same text."""
    from bosun.api.fieldmanager.paths import item_key

    want = "{" + json.dumps("name") + ":" + json.dumps(value, separators=(",", ":"), sort_keys=True) + "}"
    assert item_key({"name": value, "other": 1}, ("name",)) == want
