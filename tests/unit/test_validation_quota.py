"""ResourceQuota, LimitRange, RuntimeClass, PodTemplate and CSIDriver: refused as Kubernetes refuses them
(field paths as upstream's), defaulted as upstream defaults them."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.helpers import must_by_kind

from bosun.api.defaults import apply_defaults
from bosun.api.validation import validate_unchecked, validate_update


def checked(obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    r = must_by_kind(obj["apiVersion"], obj["kind"])
    obj = copy.deepcopy(obj)
    apply_defaults(r, obj)
    return obj, [e.detail() for e in validate_unchecked(r, obj)]


def quota(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "n"}, "spec": spec}


def limits(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "n"},
            "spec": {"limits": list(items)}}


def test_quota_scopes_values_and_quantities_are_checked() -> None:
    _, errs = checked(quota({"hard": {"pods": "ten", "count/deployments.apps": "5"}, "scopes": ["Sometimes"],
                             "scopeSelector": {"matchExpressions": [
                                 {"scopeName": "PriorityClass", "operator": "In"},
                                 {"scopeName": "BestEffort", "operator": "Exists", "values": ["x"]}]}}))
    assert any(e.startswith("spec.hard[pods]: Invalid value") for e in errs), errs
    assert any(e.startswith('spec.scopes[0]: Unsupported value: "Sometimes"') for e in errs), errs
    assert any(e.startswith("spec.scopeSelector.matchExpressions[0].values: Invalid value") for e in errs), errs
    assert any(e.startswith("spec.scopeSelector.matchExpressions[1].values: Invalid value") for e in errs), errs
    assert len(errs) == 4, errs


def test_limit_range_defaults_like_upstream_and_refuses_min_above_max() -> None:
    obj, errs = checked(limits({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"},
                                "default": {"memory": "256Mi"}}))
    assert errs == []
    item = obj["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2", "memory": "256Mi"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "256Mi"}
    _, errs = checked(limits({"type": "Pod", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "default": {"cpu": "1"}},
                             {"type": "Volume"}))
    assert any(e.startswith("spec.limits[0].min[cpu]: Invalid value") for e in errs), errs
    assert any(e.startswith("spec.limits[0].default: Invalid value") for e in errs), errs
    assert any(e.startswith('spec.limits[1].type: Unsupported value: "Volume"') for e in errs), errs


def test_runtime_class_needs_a_label_handler_that_never_changes() -> None:
    rc = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "sandboxed"},
          "handler": "Run_SC", "overhead": {"podFixed": {"cpu": "lots"}},
          "scheduling": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}}
    _, errs = checked(rc)
    assert any(e.startswith('handler: Invalid value: "Run_SC"') for e in errs), errs
    assert any(e.startswith("overhead.podFixed[cpu]: Invalid value") for e in errs), errs
    assert any(e.startswith("scheduling.tolerations[0]") for e in errs), errs
    old = dict(rc, handler="runsc", overhead={}, scheduling={})
    new = dict(old, handler="kata")
    r = must_by_kind("node.k8s.io/v1", "RuntimeClass")
    assert [e.detail() for e in validate_update(r, new, old)] == ['handler: Invalid value: "kata": field is immutable']


def test_pod_template_is_defaulted_and_its_pod_spec_validated() -> None:
    tpl = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t", "namespace": "n"},
           "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    obj, errs = checked(tpl)
    assert errs == [] and obj["template"]["spec"]["restartPolicy"] == "Always"
    _, errs = checked({**tpl, "template": {"spec": {"containers": []}}})
    assert any(e.startswith("template.spec.containers: Required value") for e in errs), errs


def test_csi_driver_is_defaulted_checked_and_keeps_its_immutable_fields() -> None:
    driver = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": "hostpath.csi.k8s.io"},
              "spec": {"fsGroupPolicy": "Sometimes", "volumeLifecycleModes": ["Forever"],
                       "tokenRequests": [{"audience": "a", "expirationSeconds": 60}, {"audience": "a"}]}}
    obj, errs = checked(driver)
    assert obj["spec"]["attachRequired"] is True and obj["spec"]["seLinuxMount"] is False
    assert any(e.startswith('spec.fsGroupPolicy: Unsupported value: "Sometimes"') for e in errs), errs
    assert any(e.startswith('spec.volumeLifecycleModes: Unsupported value: "Forever"') for e in errs), errs
    assert any(e.startswith("spec.tokenRequests[0].expirationSeconds: Invalid value: 60") for e in errs), errs
    assert any(e.startswith('spec.tokenRequests[1].audience: Duplicate value: "a"') for e in errs), errs
    r = must_by_kind("storage.k8s.io/v1", "CSIDriver")
    old = {**driver, "spec": {"attachRequired": True, "volumeLifecycleModes": ["Persistent"]}}
    new = {**driver, "spec": {"attachRequired": False, "volumeLifecycleModes": ["Persistent"]}}
    assert [e.detail() for e in validate_update(r, new, old)] == [
        "spec.attachedRequired: Invalid value: false: field is immutable"]


def test_limit_range_defaults_must_lie_between_min_and_max() -> None:
    _, errs = checked(limits({"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "128Mi"},
                              "default": {"cpu": "2", "memory": "256Mi"},
                              "defaultRequest": {"memory": "64Mi", "cpu": "500m"}}))
    assert sorted(errs) == [
        'spec.limits[0].defaultRequest[memory]: Invalid value: "64Mi": min value 128Mi is greater than '
        "default request value 64Mi",
        'spec.limits[0].default[cpu]: Invalid value: "2": default value 2 is greater than max value 1'], errs
    _, errs = checked(limits({"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}}))
    assert errs == ['spec.limits[0].defaultRequest[cpu]: Invalid value: "2": default request value 2 is greater '
                    "than default limit value 1"], errs
