"""The Deployment controller's arithmetic, checked against Kubernetes' documented rules:
fencepost rounding, how far each step of a rolling update may go, proportional resizing,
rollback equality and which history may be dropped."""

from __future__ import annotations

from typing import Any

import pytest

from bosun.controllers import deployment_util as du
from bosun.controllers.replicaset_pods import deletion_order

Obj = dict[str, Any]


def deploy(replicas: int, surge: Any = "25%", unavailable: Any = "25%", **spec: Any) -> Obj:
    return {"metadata": {"name": "d", "uid": "u", "namespace": "ns", "generation": 1},
            "spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": surge, "maxUnavailable": unavailable}},
                "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c"}]}},
                **spec}}


def rs(name: str, replicas: int, available: int | None = None, created: str = "2024-01-01T00:00:00Z",
       revision: int = 1, status_replicas: int | None = None) -> Obj:
    return {"metadata": {"name": name, "creationTimestamp": created, "generation": 1,
                         "annotations": {du.REVISION: str(revision)}},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "availableReplicas": replicas if available is None else available,
                       "observedGeneration": 1}}


@pytest.mark.parametrize(("replicas", "surge", "unav", "want"), [
    (10, "25%", "25%", (3, 2)),   # surge rounds up, unavailable rounds down
    (4, "25%", "25%", (1, 1)),
    (3, "0%", "0%", (0, 1)),      # both zero: unavailable becomes 1
    (5, 2, "10%", (2, 0)),
    (1, "100%", 0, (1, 0)),
])
def test_fenceposts_round_like_kubernetes(replicas: int, surge: Any, unav: Any, want: tuple[int, int]) -> None:
    assert du.resolve_fenceposts(deploy(replicas, surge, unav)) == want


def test_max_unavailable_never_exceeds_replicas_and_recreate_has_none() -> None:
    assert du.max_unavailable(deploy(2, 0, 5)) == 2
    d = deploy(4)
    d["spec"]["strategy"] = {"type": "Recreate"}
    assert du.max_unavailable(d) == 0 and du.max_surge(d) == 0


def test_new_replicaset_grows_only_within_surge() -> None:
    d = deploy(4, 1, 0)
    old = rs("old", 4)
    assert du.new_rs_replicas(d, [old], None) == 1
    new = rs("new", 1, 0)
    assert du.new_rs_replicas(d, [old, new], new) == 1       # 5 pods already: wait
    old_scaled = rs("old", 3, status_replicas=4)             # its controller has not deleted the pod yet:
    assert du.new_rs_replicas(d, [old_scaled, new], new) == 2  # the target counts, as Kubernetes'
    old_done = rs("old", 3)
    assert du.new_rs_replicas(d, [old_done, new], new) == 2


def test_old_replicasets_shrink_only_as_far_as_availability_allows() -> None:
    d = deploy(4, 1, 0)
    new = rs("new", 1, 0)
    assert du.old_rs_scale_down(d, new, [rs("old", 4)]) == {}  # new pod not available yet
    new = rs("new", 1, 1)
    assert du.old_rs_scale_down(d, new, [rs("old", 4)]) == {"old": 3}
    # unhealthy old pods go first and cost nothing
    d2 = deploy(4, 0, 1)
    assert du.old_rs_scale_down(d2, rs("new", 0, 0), [rs("old", 4, 2)]) == {"old": 3}


def test_oldest_replicaset_shrinks_first() -> None:
    d = deploy(4, 0, 2)
    olds = [rs("b", 2, created="2024-01-02T00:00:00Z"), rs("a", 2, created="2024-01-01T00:00:00Z")]
    assert du.old_rs_scale_down(d, rs("new", 0, 0), olds) == {"a": 0}


def test_proportional_scaling_splits_a_resize_between_replicasets() -> None:
    d = deploy(20, 3, 2)
    new = rs("new", 5, 0, created="2024-01-02T00:00:00Z")
    old = rs("old", 8, 8)
    for x in (new, old):
        x["metadata"]["annotations"][du.MAX_REPLICAS] = "13"  # was replicas 10 + surge 3
    sizes = du.proportional_sizes(d, new, [old])
    assert sum(sizes.values()) == 23 and sizes["old"] > 8 and sizes["new"] > 5
    # a single active ReplicaSet simply takes the new size
    assert du.proportional_sizes(deploy(7), rs("new", 3), [rs("old", 0)]) == {"new": 7}


def test_scaling_event_is_a_desired_replicas_mismatch() -> None:
    r = rs("a", 3)
    r["metadata"]["annotations"][du.DESIRED] = "3"
    assert not du.is_scaling_event(deploy(3), [r])
    assert du.is_scaling_event(deploy(5), [r])


def test_rollback_template_matches_despite_hash_label_and_nulls() -> None:
    d = deploy(1)
    restored = {"metadata": {"creationTimestamp": None, "labels": {"app": "d", du.HASH_LABEL: "x"}},
                "spec": {"containers": [{"name": "c"}]}}
    old = rs("d-x", 0)
    old["spec"]["template"] = restored
    assert du.find_new(d, [old]) is old


def test_reused_replicaset_gets_next_revision_and_remembers_the_old_one() -> None:
    d = deploy(2)
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "undo", du.REVISION: "9",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    r = rs("d-x", 0, revision=2)
    assert du.set_rs_annotations(d, r, 5)
    ann = r["metadata"]["annotations"]
    assert ann[du.REVISION] == "5" and ann[du.REVISION_HISTORY] == "2"
    assert ann["kubernetes.io/change-cause"] == "undo"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in ann
    assert du.DESIRED not in ann  # set only when the ReplicaSet is scaled


def test_history_drops_only_empty_replicasets_beyond_the_limit() -> None:
    d = deploy(1, revisionHistoryLimit=1)
    olds = [rs("r1", 0, revision=1), rs("r2", 1, revision=2), rs("r3", 0, revision=3)]
    assert [x["metadata"]["name"] for x in du.history_to_delete(d, olds)] == ["r1"]


def test_new_replicaset_carries_hash_in_name_selector_and_labels() -> None:
    d = deploy(3)
    r = du.new_replicaset(d, "abc", 1, 1)
    assert r["metadata"]["name"] == "d-abc"
    assert r["spec"]["selector"]["matchLabels"] == {"app": "d", du.HASH_LABEL: "abc"}
    assert r["spec"]["template"]["metadata"]["labels"][du.HASH_LABEL] == "abc"
    assert "pod-template-hash" not in d["spec"]["template"]["metadata"]["labels"]
    assert r["metadata"]["annotations"][du.DESIRED] == "3" and r["metadata"]["annotations"][du.MAX_REPLICAS] == "4"


def test_surplus_pods_die_unscheduled_then_unready_then_youngest() -> None:
    def pod(name: str, node: str = "", ready_at: str | None = None, created: str = "2024-01-01T00:00:00Z") -> Obj:
        conds = [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}] if ready_at else []
        return {"metadata": {"name": name, "namespace": "n", "creationTimestamp": created},
                "spec": {"nodeName": node},
                "status": {"phase": "Running" if ready_at else "Pending", "conditions": conds}}
    pods = [pod("old-ready", "n1", "2024-01-01T00:00:00Z"), pod("young-ready", "n2", "2024-01-01T01:00:00Z"),
            pod("unready", "n3"), pod("unscheduled")]
    assert [p["metadata"]["name"] for p in deletion_order(pods)] == [
        "unscheduled", "unready", "young-ready", "old-ready"]
