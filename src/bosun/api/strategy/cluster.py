"""Strategies of the networking, coordination, scheduling, storage, discovery, policy, RBAC,
apiregistration and node kinds, of ResourceQuota and LimitRange and of PodTemplate: none has
rules beyond its validator, defaulter and update rule, so each is the generic strategy."""

from __future__ import annotations

from bosun.api.defaults import core as dcore
from bosun.api.defaults.networking import default_network_policy
from bosun.api.defaults.storage import default_csi_driver, default_storage_class
from bosun.api.strategy.base import Strategy
from bosun.api.validation import ingress, other, quota, rbac, storage, update
from bosun.api.validation.apiregistration import default_api_service, validate_api_service
from bosun.api.validation.networking import validate_network_policy
from bosun.api.validation.policy import validate_pdb

INGRESS = Strategy(ingress.validate_ingress)
INGRESS_CLASS = Strategy(ingress.validate_ingress_class, update_rule=ingress.ingress_class_update)
NETWORK_POLICY = Strategy(validate_network_policy, defaulter=default_network_policy)
LEASE = Strategy(other.validate_lease)
# Go serializes these counts even at zero, and the official client requires them.
POD_DISRUPTION_BUDGET = Strategy(validate_pdb, status_zeros={
    "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
PRIORITY_CLASS = Strategy(other.validate_priority_class, update_rule=update.priority_class_update,
                          defaulter=dcore.default_priority_class)
STORAGE_CLASS = Strategy(storage.validate_storage_class, update_rule=storage.validate_storage_class_update,
                         defaulter=default_storage_class, return_deleted_object=True)
ROLE = Strategy(rbac.validate_role)
CLUSTER_ROLE = Strategy(rbac.validate_cluster_role)
ROLE_BINDING = Strategy(rbac.validate_role_binding, update_rule=rbac.validate_binding_update)
CLUSTER_ROLE_BINDING = Strategy(rbac.validate_cluster_role_binding, update_rule=rbac.validate_binding_update)
API_SERVICE = Strategy(validate_api_service, defaulter=default_api_service)
RESOURCE_QUOTA = Strategy(quota.validate_resource_quota, return_deleted_object=True)
LIMIT_RANGE = Strategy(quota.validate_limit_range, defaulter=dcore.default_limit_range)
RUNTIME_CLASS = Strategy(quota.validate_runtime_class, update_rule=quota.runtime_class_update)
POD_TEMPLATE = Strategy(quota.validate_pod_template_object, defaulter=dcore.default_pod_template,
                        return_deleted_object=True)
CSI_DRIVER = Strategy(storage.validate_csi_driver, update_rule=storage.validate_csi_driver_update,
                      defaulter=default_csi_driver, return_deleted_object=True)
