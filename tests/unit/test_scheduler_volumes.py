"""The VolumeBinding filter on a snapshot built from plain objects: where a pod with claims
may go, Kubernetes' failure messages, the node promised to an unbound claim, and that pods
without claims never reach the plugin."""

from __future__ import annotations

from typing import Any

import numpy as np

from bosun.scheduler.framework import CycleState, run_filters
from bosun.scheduler.plugins import default_filters
from bosun.scheduler.plugins.volumebinding import SELECTED_NODE, VolumeBinding
from bosun.scheduler.podinfo import PodInfo, parse_pod
from bosun.scheduler.snapshot import Snapshot

Obj = dict[str, Any]


class Objects:
    """A lister over plain objects (what an Informer answers)."""

    def __init__(self, *objs: Obj) -> None:
        self.items = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.items.get((namespace, name))


def node(name: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}


def claim(name: str, *, cls: str | None = "local-path", volume: str = "", annotations: dict[str, str] | None = None
          ) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    return {"metadata": {"name": name, "namespace": "d", "annotations": annotations or {}}, "spec": spec}


def volume(name: str, on: str) -> Obj:
    return {"metadata": {"name": name}, "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [on]}]}]}}}}


def sc(name: str, mode: str) -> Obj:
    return {"metadata": {"name": name}, "provisioner": "bosun.io/local-path", "volumeBindingMode": mode}


def pod(name: str, *claims: str) -> PodInfo:
    vols = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]
    return parse_pod({"metadata": {"name": name, "namespace": "d", "uid": name},
                      "spec": {"containers": [{"name": "c"}], "volumes": vols}})


def setup(claims: list[Obj], volumes: tuple[Obj, ...] | list[Obj] = (),
          classes: tuple[Obj, ...] | list[Obj] = ()) -> tuple[Snapshot, VolumeBinding]:
    snap = Snapshot(capacity=2)
    for n in ("a", "b", "c"):
        snap.set_node(node(n))
    vb = VolumeBinding(Objects(*claims), Objects(*volumes),
                       Objects(sc("local-path", "WaitForFirstConsumer"), *classes))
    return snap, vb


def verdict(snap: Snapshot, vb: VolumeBinding, p: PodInfo, state: CycleState | None = None) -> tuple[set[str], str]:
    feasible, diag = run_filters(p, snap, default_filters(snap, vb), state or CycleState())
    return {snap.names[i] for i in np.flatnonzero(feasible)}, diag.message()


def test_a_bound_claim_keeps_the_pod_on_its_volumes_node() -> None:
    snap, vb = setup([claim("data-web-0", volume="pv-1")], [volume("pv-1", "b")])
    assert verdict(snap, vb, pod("web-0", "data-web-0")) == ({"b"}, "0/3 nodes are available: 2 node(s) had volume "
                                                                     "node affinity conflict.")


def test_volume_on_a_node_that_is_gone_fits_nowhere_with_kubernetes_reason() -> None:
    snap, vb = setup([claim("data-web-0", volume="pv-1")], [volume("pv-1", "gone")])
    assert verdict(snap, vb, pod("web-0", "data-web-0")) == (
        set(), "0/3 nodes are available: 3 node(s) had volume node affinity conflict.")


def test_missing_claim_is_a_pod_wide_reason() -> None:
    snap, vb = setup([])
    assert verdict(snap, vb, pod("web-0", "data-web-0")) == (
        set(), '0/3 nodes are available: persistentvolumeclaim "data-web-0" not found.')


def test_unbound_immediate_claim_waits() -> None:
    snap, vb = setup([claim("c1", cls="fast")], classes=[sc("fast", "Immediate")])
    assert verdict(snap, vb, pod("p", "c1")) == (
        set(), "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
    # The older annotation still turns a default-class claim Immediate.
    snap, vb = setup([claim("c2", annotations={"bosun.io/volume-binding-mode": "Immediate"})])
    assert verdict(snap, vb, pod("p", "c2"))[0] == set()


def test_unknown_class_is_reported() -> None:
    snap, vb = setup([claim("c1", cls="nope")])
    assert verdict(snap, vb, pod("p", "c1"))[1] == \
        '0/3 nodes are available: storageclass.storage.k8s.io "nope" not found.'


def test_unbound_wait_for_first_consumer_claim_is_promised_to_the_chosen_node() -> None:
    snap, vb = setup([claim("shared"), claim("legacy", cls=None)])
    state = CycleState()
    ok, _ = verdict(snap, vb, pod("p1", "shared", "legacy"), state)
    assert ok == {"a", "b", "c"}
    assert sorted(vb.assume(pod("p1", "shared", "legacy"), "c", state)) == ["legacy", "shared"]
    # A second pod of the same claims must follow before the volume exists.
    assert verdict(snap, vb, pod("p2", "shared"))[0] == {"c"}
    # Once the claim carries the annotation the promise is the annotation's.
    annotated = claim("shared", annotations={SELECTED_NODE: "c"})
    vb.claim_changed(annotated)
    assert "d/shared" not in vb.assumed
    vb.claims = Objects(annotated, claim("legacy", cls=None))
    assert verdict(snap, vb, pod("p3", "shared"))[0] == {"c"}


def test_selected_node_that_is_gone_is_ignored() -> None:
    snap, vb = setup([claim("c1", annotations={SELECTED_NODE: "gone"})])
    assert verdict(snap, vb, pod("p", "c1"))[0] == {"a", "b", "c"}


def test_pods_without_claims_skip_the_plugin() -> None:
    _, vb = setup([])
    p = parse_pod({"metadata": {"name": "x", "namespace": "d"},
                   "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "e", "emptyDir": {}}]}})
    assert p.claims == () and not vb.relevant(p)
    ephemeral = parse_pod({"metadata": {"name": "x", "namespace": "d"},
                           "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "e", "ephemeral": {}}]}})
    assert ephemeral.claims == ("x-e",)
