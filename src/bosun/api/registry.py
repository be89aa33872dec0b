"""The one table of resources the API serves.

Discovery, OpenAPI, routing, storage keys, tables and kubectl's short names all derive from
this table so that adding a kind is one row, not edits scattered over the server. A row names
its kind's strategy (:mod:`bosun.api.strategy`): the kind's rules on a write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bosun.api.conversion import Converter
from bosun.api.conversion.events import EVENTS_V1
from bosun.api.conversion.hpa import HPA_V1
from bosun.api.strategy import GENERIC, Strategy
from bosun.api.strategy import admissionpolicy as sap
from bosun.api.strategy import apiextensions as sx
from bosun.api.strategy import certificates as scert
from bosun.api.strategy import cluster as sc
from bosun.api.strategy import core as s
from bosun.api.strategy import flowcontrol as sfc
from bosun.api.strategy import webhooks as swh
from bosun.api.strategy import workloads as sw


class Custom(Protocol):
    """What a row made at run time from a CustomResourceDefinition brings instead of the
    built-in tables (generated schemas, printers, the workloads' scale fields). The generic
    stages ask a row for it; they never ask which kind it is."""

    def unknown_fields(self, obj: dict[str, Any]) -> list[str]:
        """Paths of fields the schema does not declare (``spec.foo``)."""
        ...

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Drop the fields the schema does not declare; their paths."""
        ...

    def openapi_schema(self) -> dict[str, Any]:
        """The version's schema for the OpenAPI documents (kubectl explain, apply)."""
        ...

    def table_columns(self) -> list[dict[str, Any]]:
        """``additionalPrinterColumns`` as Table column definitions (Name first, Age last
        when none is given)."""
        ...

    def table_cells(self, obj: dict[str, Any], now: datetime) -> list[Any]:
        ...

    def selectable_fields(self) -> frozenset[str]:
        """Field labels a field selector may name besides metadata's (``spec.color``)."""
        ...

    def scale_paths(self) -> tuple[str, str, str]:
        """(spec replicas, status replicas, label selector) paths, e.g. ``.spec.replicas``;
        the selector path may be empty."""
        ...


@dataclass(frozen=True, slots=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # e.g. "status", "scale", "binding", "log", "eviction"
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )
    # Kinds whose spec changes bump metadata.generation; others bump on any non-metadata change.
    has_spec: bool = True
    list_kind: str = field(default="", compare=False)
    # (parent plural, subresource): creating one of these is that subresource's write on the
    # parent the body names (POST .../bindings is POST .../pods/{name}/binding).
    created_as: tuple[str, str] | None = None
    # What is special about the kind on a write (status reset, defaults, validation,
    # deletion policy): the generic write path asks it and never names a kind.
    strategy: Strategy = field(default=GENERIC, compare=False, repr=False)
    # Set on rows served for a CustomResourceDefinition (:mod:`bosun.api.crd`).
    custom: Custom | None = field(default=None, compare=False, repr=False)
    # A served version stored in another one (bosun.api.conversion): requests are converted.
    converter: Converter | None = field(default=None, compare=False, repr=False)
    # A deprecated version's warning, sent with every response about it (``Warning`` header).
    deprecation: str | None = field(default=None, compare=False, repr=False)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    def key_prefix(self, namespace: str | None = None) -> str:
        """Store prefix for every object of this resource (in one namespace when given)."""
        base = f"/registry/{self.group_plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    @property
    def group_plural(self) -> str:
        """Storage name; includes the group so two groups' plurals never collide."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.group_plural}/{namespace}/{name}"
        return f"/registry/{self.group_plural}/{name}"


_ALL = ("all",)
_STD = (
    "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
)

RESOURCES: tuple[Resource, ...] = (
    # core/v1
    Resource("", "v1", "Namespace", "namespaces", False, ("ns",),
             subresources=("status", "finalize"),
             verbs=("create", "delete", "get", "list", "patch", "update", "watch"), strategy=s.NAMESPACE),
    Resource("", "v1", "Pod", "pods", True, ("po",), _ALL,
             subresources=("status", "binding", "log", "eviction", "exec", "attach", "portforward",
                           "ephemeralcontainers"),
             strategy=s.POD),
    Resource("", "v1", "Service", "services", True, ("svc",), _ALL, subresources=("status",), strategy=s.SERVICE),
    Resource("", "v1", "Endpoints", "endpoints", True, ("ep",), has_spec=False, strategy=s.ENDPOINTS),
    Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",), has_spec=False, strategy=s.CONFIG_MAP),
    Resource("", "v1", "Secret", "secrets", True, (), has_spec=False, strategy=s.SECRET),
    Resource("", "v1", "Event", "events", True, ("ev",), has_spec=False, strategy=s.EVENT),
    Resource("", "v1", "Node", "nodes", False, ("no",), subresources=("status",), strategy=s.NODE),
    Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",),
             subresources=("status",), strategy=s.CLAIM),
    Resource("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",),
             subresources=("status",), strategy=s.VOLUME),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), has_spec=False,
             subresources=("token",), strategy=s.SERVICE_ACCOUNT),
    Resource("", "v1", "ReplicationController", "replicationcontrollers", True, ("rc",), _ALL,
             subresources=("status", "scale"), strategy=sw.REPLICATION_CONTROLLER),
    Resource("", "v1", "PodTemplate", "podtemplates", True, (), has_spec=False, strategy=sc.POD_TEMPLATE),
    Resource("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), subresources=("status",),
             strategy=sc.RESOURCE_QUOTA),
    Resource("", "v1", "LimitRange", "limitranges", True, ("limits",), strategy=sc.LIMIT_RANGE),
    # Binding is create-only: POSTing one assigns a pod to a node (older clients' way to bind).
    Resource("", "v1", "Binding", "bindings", True, (), has_spec=False, verbs=("create",),
             created_as=("pods", "binding")),
    # apps/v1
    Resource("apps", "v1", "Deployment", "deployments", True, ("deploy",), _ALL,
             subresources=("status", "scale"), strategy=sw.DEPLOYMENT),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), _ALL,
             subresources=("status", "scale"), strategy=sw.REPLICA_SET),
    Resource("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), _ALL,
             subresources=("status", "scale"), strategy=sw.STATEFUL_SET),
    Resource("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), _ALL,
             subresources=("status",), strategy=sw.DAEMON_SET),
    Resource("apps", "v1", "ControllerRevision", "controllerrevisions", True, (), has_spec=False,
             strategy=sw.CONTROLLER_REVISION),
    # batch/v1
    Resource("batch", "v1", "Job", "jobs", True, (), _ALL, subresources=("status",), strategy=sw.JOB),
    Resource("batch", "v1", "CronJob", "cronjobs", True, ("cj",), _ALL, subresources=("status",), strategy=sw.CRON_JOB),
    # networking.k8s.io/v1
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",),
             subresources=("status",), strategy=sc.INGRESS),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",),
             strategy=sc.NETWORK_POLICY),
    Resource("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False, (),
             strategy=sc.INGRESS_CLASS),
    # policy/v1
    Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",),
             subresources=("status",), strategy=sc.POD_DISRUPTION_BUDGET),
    # autoscaling/v2
    Resource("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
             ("hpa",), _ALL, subresources=("status",), strategy=sw.HPA),
    # autoscaling/v1 (`kubectl autoscale` writes it): the same objects, converted to and from v2.
    Resource("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
             ("hpa",), _ALL, subresources=("status",), strategy=sw.HPA, converter=HPA_V1),
    # discovery.k8s.io/v1
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, (), has_spec=False),
    # coordination.k8s.io/v1
    Resource("coordination.k8s.io", "v1", "Lease", "leases", True, (), strategy=sc.LEASE),
    # events.k8s.io/v1: the core/v1 Events themselves, seen through another group's fields.
    Resource("events.k8s.io", "v1", "Event", "events", True, ("ev",), has_spec=False, strategy=s.EVENT,
             converter=EVENTS_V1),
    # certificates.k8s.io/v1
    Resource("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", False,
             ("csr",), subresources=("status", "approval"), strategy=scert.CSR),
    # scheduling.k8s.io/v1
    Resource("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",),
             has_spec=False, strategy=sc.PRIORITY_CLASS),
    # node.k8s.io/v1
    Resource("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False, (), has_spec=False,
             strategy=sc.RUNTIME_CLASS),
    # storage.k8s.io/v1
    Resource("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",),
             has_spec=False, strategy=sc.STORAGE_CLASS),
    Resource("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False, (), strategy=sc.CSI_DRIVER),
    # apiextensions.k8s.io/v1: the CustomResourceDefinition itself; the custom resources it
    # defines are served from bosun.api.catalog once it is Established.
    Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
             ("crd", "crds"), subresources=("status",), strategy=sx.CRD),
    # apiregistration.k8s.io/v1: which server serves each group version (this one: Local)
    Resource("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, (), ("api-extensions",),
             subresources=("status",), strategy=sc.API_SERVICE),
    # admissionregistration.k8s.io/v1 webhooks: the admission chain calls them (bosun.api.admission.webhooks)
    Resource("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
             "validatingwebhookconfigurations", False, (), ("api-extensions",), has_spec=False,
             strategy=swh.VALIDATING_WEBHOOK_CONFIGURATION),
    Resource("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
             "mutatingwebhookconfigurations", False, (), ("api-extensions",), has_spec=False,
             strategy=swh.MUTATING_WEBHOOK_CONFIGURATION),
    # admissionregistration.k8s.io/v1: CEL admission policies, enforced by
    # bosun.api.admission.policy from the watch cache.
    Resource("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False,
             (), ("api-extensions",), subresources=("status",), strategy=sap.POLICY),
    Resource("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
             "validatingadmissionpolicybindings", False, (), ("api-extensions",), strategy=sap.BINDING),
    # flowcontrol.apiserver.k8s.io/v1: API Priority and Fairness objects, served and kept
    # (bosun.api.flowcontrol); requests are not throttled by them.
    Resource("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", False, (),
             subresources=("status",), strategy=sfc.FLOW_SCHEMA),
    Resource("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations",
             False, (), subresources=("status",), strategy=sfc.PRIORITY_LEVEL),
    # rbac.authorization.k8s.io/v1 (who may do what; read by the RBAC authorizer from the watch cache)
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", True, (), has_spec=False, strategy=sc.ROLE),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, (), has_spec=False,
             strategy=sc.CLUSTER_ROLE),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True, (), has_spec=False,
             strategy=sc.ROLE_BINDING),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False, (),
             has_spec=False, strategy=sc.CLUSTER_ROLE_BINDING),
)

# The rows whose objects are stored as they are served: one per kind. Code that walks every
# object (garbage collection, namespace deletion, encryption) walks these, never a kind twice.
STORED: tuple[Resource, ...] = tuple(r for r in RESOURCES if r.converter is None)

_BY_GVR: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}
_BY_GVK: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.kind): r for r in RESOURCES}


def by_plural(group: str, version: str, plural: str) -> Resource | None:
    return _BY_GVR.get((group, version, plural))


def must_by_plural(group: str, version: str, plural: str) -> Resource:
    """:func:`by_plural` for a resource the code is written against: a misspelt name fails
    where it is looked up (mostly at import), not later as a ``None``."""
    res = _BY_GVR.get((group, version, plural))
    assert res is not None, plural
    return res


def by_kind(api_version: str, kind: str) -> Resource | None:
    """Look up by an object's apiVersion ("v1", "apps/v1") and kind."""
    group, _, version = api_version.rpartition("/")
    return _BY_GVK.get((group, version, kind))


def group_versions() -> dict[str, list[str]]:
    """Served versions per group, in the order they first appear ("" is core)."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def resources_in(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def find(name: str) -> Resource | None:
    """Resolve what a user types (`po`, `pods`, `pod`, `Deployment`, `deployments.apps`)."""
    name_l = name.lower()
    plural, _, group = name_l.partition(".")
    for r in RESOURCES:
        if group and r.group != group:
            continue
        if plural in (r.plural, r.singular) or plural in r.short_names:
            return r
    return None
