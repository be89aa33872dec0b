"""Validation of API objects, per kind, with Kubernetes' field paths and messages.

The API server calls :func:`validate` on every create and update (after defaults and after
patches), and :func:`validate_update` on updates for the rules that compare with the stored
object. Both return field errors and never raise, whatever the body holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bosun.api.errors import FieldError
from bosun.api.registry import Resource
from bosun.api.validation import apps, batch, core, networking, other, rbac, service, storage
from bosun.api.validation.fields import Checker, type_error
from bosun.api.validation.meta import dns1123_subdomain, validate_object_meta
from bosun.api.validation.update import UPDATE_RULES

log = logging.getLogger(__name__)

Validator = Callable[[Checker, dict[str, Any]], None]

VALIDATORS: dict[str, Validator] = {
    "Namespace": core.validate_namespace,
    "Pod": core.validate_pod,
    "Service": service.validate_service,
    "ConfigMap": core.validate_configmap,
    "Secret": core.validate_secret,
    "Node": core.validate_node,
    "PersistentVolumeClaim": core.validate_pvc,
    "PersistentVolume": core.validate_pv,
    "Event": core.validate_event,
    "Endpoints": core.validate_endpoints,
    "ServiceAccount": core.validate_service_account,
    "Deployment": apps.validate_deployment,
    "ReplicaSet": apps.validate_replicaset,
    "StatefulSet": apps.validate_statefulset,
    "DaemonSet": apps.validate_daemonset,
    "ControllerRevision": apps.validate_controller_revision,
    "Job": batch.validate_job,
    "CronJob": batch.validate_cronjob,
    "Ingress": other.validate_ingress,
    "NetworkPolicy": networking.validate_network_policy,
    "HorizontalPodAutoscaler": other.validate_hpa,
    "Lease": other.validate_lease,
    "PriorityClass": other.validate_priority_class,
    "StorageClass": storage.validate_storage_class,
    "Role": rbac.validate_role,
    "ClusterRole": rbac.validate_cluster_role,
    "RoleBinding": rbac.validate_role_binding,
    "ClusterRoleBinding": rbac.validate_cluster_role_binding,
}
UPDATE_RULES["StorageClass"] = storage.validate_storage_class_update
UPDATE_RULES["RoleBinding"] = rbac.validate_binding_update
UPDATE_RULES["ClusterRoleBinding"] = rbac.validate_binding_update


def validate_unchecked(resource: Resource, obj: Any) -> list[FieldError]:
    """:func:`validate` without the safety net; tests call this so bugs surface as exceptions."""
    if not isinstance(obj, dict):
        return [type_error("", obj, "object")]
    c = Checker()
    fn = VALIDATORS.get(resource.kind)
    if fn is None:
        validate_object_meta(c, obj, dns1123_subdomain, namespaced=resource.namespaced)
    else:
        fn(c, obj)
    return c.errors


def validate(resource: Resource, obj: Any) -> list[FieldError]:
    """Every rule of ``resource``'s kind that needs only the object itself."""
    try:
        return validate_unchecked(resource, obj)
    except Exception as exc:  # a rule's bug must not become a 500 for the client
        log.exception("validation of %s crashed", resource.kind)
        return [FieldError("FieldValueInvalid", "", f"object could not be validated: {exc}")]


def validate_update(resource: Resource, new: Any, old: Any) -> list[FieldError]:
    """The rules an update must also obey: fields that may not change once set."""
    if not isinstance(new, dict) or not isinstance(old, dict):
        return []
    rule = UPDATE_RULES.get(resource.kind)
    if rule is None:
        return []
    try:
        return rule(new, old)
    except Exception as exc:
        log.exception("update validation of %s crashed", resource.kind)
        return [FieldError("FieldValueInvalid", "", f"object could not be validated: {exc}")]


__all__ = ["validate", "validate_unchecked", "validate_update"]
