"""PATCH semantics: JSON merge patch, JSON patch, and Kubernetes' strategic merge patch.

The strategic cases use the bodies ``kubectl apply`` (client-side, three-way) sends for
everyday edits of a manifest, written out as kubectl computes them from the last-applied
annotation, the edited file and the live object.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from tests.unit.helpers import must_by_kind

from bosun.api.patch import PatchError, apply_patch
from bosun.api.registry import Resource

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSONP = "application/json-patch+json"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"




DEPLOY = must_by_kind("apps/v1", "Deployment")
POD = must_by_kind("v1", "Pod")
NODE = must_by_kind("v1", "Node")
SERVICE = must_by_kind("v1", "Service")
CRONJOB = must_by_kind("batch/v1", "CronJob")
CONFIGMAP = must_by_kind("v1", "ConfigMap")


def _patch(obj: dict[str, Any], body: Any, ctype: str = SMP, res: Resource = DEPLOY) -> dict[str, Any]:
    before = copy.deepcopy(obj)
    out = apply_patch(obj, orjson.dumps(body), ctype, res)
    assert obj == before, "apply_patch must not modify the original object"
    return out


def _live_deployment() -> dict[str, Any]:
    """A deployment as stored after creation: server defaults filled in, status set."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {LAST_APPLIED: "{}", "deployment.kubernetes.io/revision": "1"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.25",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "terminationMessagePath": "/dev/termination-log",
                        },
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "inf"]},
                    ],
                    "tolerations": [{"key": "gpu", "operator": "Exists"}],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                },
            },
        },
        "status": {"replicas": 3, "readyReplicas": 3,
                   "conditions": [{"type": "Available", "status": "True"}]},
    }


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


# ---- kubectl apply of an edited manifest ------------------------------------------------------


def test_apply_changed_image_of_one_container_keeps_everything_else() -> None:
    new_last = json.dumps({"kind": "Deployment", "spec": {"replicas": 3}})
    body = {
        "metadata": {"annotations": {LAST_APPLIED: new_last}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.26", "name": "app"}],
        }}},
    }
    out = _patch(_live_deployment(), body)
    app, sidecar = _containers(out)
    assert app["image"] == "nginx:1.26"
    assert app["imagePullPolicy"] == "IfNotPresent"  # server default survives
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert sidecar == {"name": "sidecar", "image": "busybox", "args": ["sleep", "inf"]}
    assert out["metadata"]["annotations"][LAST_APPLIED] == new_last
    assert out["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert out["status"] == _live_deployment()["status"]


def test_apply_removed_env_var_deletes_only_that_entry() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{
            "$setElementOrder/env": [{"name": "A"}],
            "env": [{"$patch": "delete", "name": "B"}],
            "name": "app",
        }],
    }}}}
    out = _patch(_live_deployment(), body)
    app, _ = _containers(out)
    assert app["env"] == [{"name": "A", "value": "1"}]
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_apply_removed_container() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}],
    }}}}
    out = _patch(_live_deployment(), body)
    assert [c["name"] for c in _containers(out)] == ["app"]


def test_apply_added_container_goes_where_the_manifest_puts_it() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "metrics"}, {"name": "app"}, {"name": "sidecar"}],
        "containers": [{"name": "metrics", "image": "prom/exporter"}],
    }}}}
    out = _patch(_live_deployment(), body)
    assert [c["name"] for c in _containers(out)] == ["metrics", "app", "sidecar"]
    assert _containers(out)[0] == {"name": "metrics", "image": "prom/exporter"}


def test_apply_keeps_container_injected_by_the_server_in_place() -> None:
    live = _live_deployment()
    _containers(live).insert(1, {"name": "proxy", "image": "envoy"})
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"image": "nginx:1.26", "name": "app"}],
    }}}}
    out = _patch(live, body)
    assert [c["name"] for c in _containers(out)] == ["app", "proxy", "sidecar"]


def test_apply_changed_args_replaces_the_whole_atomic_list() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"args": ["sleep", "10"], "name": "sidecar"}],
    }}}}
    out = _patch(_live_deployment(), body)
    assert _containers(out)[1]["args"] == ["sleep", "10"]


def test_apply_removed_label_and_replicas_null_deletes_keys() -> None:
    body = {"metadata": {"labels": {"tier": None}}, "spec": {"replicas": None}}
    out = _patch(_live_deployment(), body)
    assert out["metadata"]["labels"] == {"app": "web"}
    assert "replicas" not in out["spec"]


def test_apply_changed_strategy_uses_retain_keys() -> None:
    body = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}}
    out = _patch(_live_deployment(), body)
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_apply_changed_volume_source_retains_only_listed_keys() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"},
                     "emptyDir": None, "name": "data"}],
    }}}}
    out = _patch(_live_deployment(), body)
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "configMap": {"name": "cfg"}}]


def test_apply_removed_finalizer_from_primitive_list() -> None:
    body = {"metadata": {
        "$setElementOrder/finalizers": ["example.com/b", "example.com/c"],
        "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
        "finalizers": ["example.com/c"],
    }}
    out = _patch(_live_deployment(), body)
    assert out["metadata"]["finalizers"] == ["example.com/b", "example.com/c"]


def test_tolerations_are_atomic() -> None:
    body = {"spec": {"template": {"spec": {"tolerations": [{"key": "ssd", "operator": "Exists"}]}}}}
    out = _patch(_live_deployment(), body)
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"key": "ssd", "operator": "Exists"}]


# ---- strategic directives ---------------------------------------------------------------------


def test_patch_replace_on_a_map_and_on_a_list() -> None:
    out = _patch(_live_deployment(), {"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert out["metadata"]["labels"] == {"only": "this"}
    body = {"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "solo", "image": "alpine"},
    ]}}}}
    out = _patch(_live_deployment(), body)
    assert _containers(out) == [{"name": "solo", "image": "alpine"}]


def test_patch_delete_on_a_map_empties_it() -> None:
    out = _patch(_live_deployment(), {"spec": {"strategy": {"$patch": "delete"}}})
    assert out["spec"]["strategy"] == {}


def test_kubectl_set_image_style_patch_without_order_directive() -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.36"}]}}}}
    out = _patch(_live_deployment(), body)
    assert [c["image"] for c in _containers(out)] == ["nginx:1.25", "busybox:1.36"]


def test_new_list_entry_has_nulls_and_directives_dropped() -> None:
    body = {"spec": {"template": {"spec": {"containers": [
        {"name": "new", "image": "x", "workingDir": None, "env": [{"name": "E", "value": "1"}]},
    ]}}}}
    out = _patch(_live_deployment(), body)
    # Without $setElementOrder, Kubernetes puts entries the live list lacks first.
    assert [c["name"] for c in _containers(out)] == ["new", "app", "sidecar"]
    assert _containers(out)[0] == {"name": "new", "image": "x", "env": [{"name": "E", "value": "1"}]}


def test_pod_status_conditions_merge_by_type() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "x"}]},
           "status": {"phase": "Pending", "conditions": [
               {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}}
    body = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    out = _patch(pod, body, res=POD)
    assert out["status"]["conditions"] == [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]
    assert out["status"]["phase"] == "Running"


def test_service_ports_merge_by_port() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
    body = {"spec": {"ports": [{"port": 443, "targetPort": 8443}, {"port": 80, "nodePort": 30080}]}}
    out = _patch(svc, body, res=SERVICE)
    assert out["spec"]["ports"] == [
        {"port": 443, "targetPort": 8443},
        {"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
    ]


def test_node_taints_are_replaced_as_kubernetes_declares_them() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    out = _patch(node, {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}], "unschedulable": True},
                        "status": {"addresses": [{"type": "Hostname", "address": "n"}]}}, res=NODE)
    assert out["spec"]["taints"] == [{"key": "b", "effect": "NoExecute"}]
    assert out["spec"]["unschedulable"] is True
    assert [a["type"] for a in out["status"]["addresses"]] == ["Hostname", "InternalIP"]


def test_cronjob_containers_are_found_under_job_template() -> None:
    cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
          "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
              "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}}}}
    body = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "b", "image": "z"}]}}}}}}
    out = _patch(cj, body, res=CRONJOB)
    conts = out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert conts == [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]


def test_unknown_kind_lists_are_replaced() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    out = _patch(cm, {"data": {"a": None, "c": "3"}}, res=CONFIGMAP)
    assert out["data"] == {"b": "2", "c": "3"}


@pytest.mark.parametrize("body, fragment", [
    ({"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}},
     "does not contain declared merge key: name"),
    ({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}},
     "does not contain declared merge key: name"),
    ({"spec": {"strategy": {"$patch": "explode"}}}, "unknown patch type: explode"),
    ({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"name": "zzz", "image": "x"}]}}}}, "doesn't match $setElementOrder/ list"),
])
def test_bad_strategic_patches_are_refused(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PatchError) as e:
        _patch(_live_deployment(), body)
    assert fragment in str(e.value)


# ---- JSON merge patch and JSON patch ----------------------------------------------------------


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    body = {"metadata": {"labels": {"tier": None, "new": "1"}},
            "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}}
    out = _patch(_live_deployment(), body, MERGE)
    assert out["metadata"]["labels"] == {"app": "web", "new": "1"}
    assert _containers(out) == [{"name": "only", "image": "x"}]


def test_json_patch_ops_and_failed_test() -> None:
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 5},
           {"op": "add", "path": "/metadata/labels/x", "value": "y"},
           {"op": "remove", "path": "/spec/template/spec/containers/1"}]
    out = _patch(_live_deployment(), ops, JSONP)
    assert out["spec"]["replicas"] == 5
    assert out["metadata"]["labels"]["x"] == "y"
    assert [c["name"] for c in _containers(out)] == ["app"]
    with pytest.raises(PatchError):
        _patch(_live_deployment(), [{"op": "test", "path": "/spec/replicas", "value": 9}], JSONP)
    with pytest.raises(PatchError):
        _patch(_live_deployment(), [{"op": "remove", "path": "/nope/x"}], JSONP)
    with pytest.raises(PatchError):
        _patch(_live_deployment(), {"op": "remove"}, JSONP)


def test_server_side_apply_is_refused_with_a_hint() -> None:
    with pytest.raises(PatchError) as e:
        apply_patch(_live_deployment(), b"apiVersion: apps/v1\n", "application/apply-patch+yaml", DEPLOY)
    assert e.value.code == 415
    assert "server-side apply is not supported" in str(e.value)
    assert "without --server-side" in str(e.value)


def test_undecodable_body_and_content_type_parameters() -> None:
    with pytest.raises(PatchError) as e:
        apply_patch(_live_deployment(), b"{not json", SMP, DEPLOY)
    assert e.value.code == 400
    out = apply_patch(_live_deployment(), b'{"spec":{"replicas":1}}', MERGE + "; charset=utf-8", DEPLOY)
    assert out["spec"]["replicas"] == 1
