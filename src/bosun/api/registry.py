"""The one table of resources the API serves.

Discovery, OpenAPI, routing, storage keys, tables and kubectl's short names all derive from
this table so that adding a kind is one row, not edits scattered over the server. A row is
the kind's names and paths (:mod:`bosun.api.kinds`, all a client needs) with its strategy
(:mod:`bosun.api.strategy`): the kind's rules on a write.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Protocol

from bosun.api.conversion import Converter
from bosun.api.conversion.events import EVENTS_V1
from bosun.api.conversion.hpa import HPA_V1
from bosun.api.kinds import KINDS, Kind
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


@dataclass(frozen=True, slots=True, eq=False)
class Resource(Kind):
    """A kind as the server serves it: its row of :mod:`bosun.api.kinds` and the rules of a write."""

    # What is special about the kind on a write (status reset, defaults, validation,
    # deletion policy): the generic write path asks it and never names a kind.
    strategy: Strategy = field(default=GENERIC, repr=False)
    # Set on rows served for a CustomResourceDefinition (:mod:`bosun.api.crd`).
    custom: Custom | None = field(default=None, repr=False)
    # A served version stored in another one (bosun.api.conversion): requests are converted.
    converter: Converter | None = field(default=None, repr=False)
    # A deprecated version's warning, sent with every response about it (``Warning`` header).
    deprecation: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, kind: Kind, strategy: Strategy = GENERIC, converter: Converter | None = None) -> Resource:
        return cls(**{f.name: getattr(kind, f.name) for f in fields(Kind) if f.init}, strategy=strategy,
                   converter=converter)


# Each built-in kind's rules on a write, by (group, plural): every version of a kind shares them.
_STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("", "namespaces"): s.NAMESPACE,
    ("", "pods"): s.POD,
    ("", "services"): s.SERVICE,
    ("", "endpoints"): s.ENDPOINTS,
    ("", "configmaps"): s.CONFIG_MAP,
    ("", "secrets"): s.SECRET,
    ("", "events"): s.EVENT,
    ("", "nodes"): s.NODE,
    ("", "persistentvolumeclaims"): s.CLAIM,
    ("", "persistentvolumes"): s.VOLUME,
    ("", "serviceaccounts"): s.SERVICE_ACCOUNT,
    ("", "replicationcontrollers"): sw.REPLICATION_CONTROLLER,
    ("", "podtemplates"): sc.POD_TEMPLATE,
    ("", "resourcequotas"): sc.RESOURCE_QUOTA,
    ("", "limitranges"): sc.LIMIT_RANGE,
    ("apps", "deployments"): sw.DEPLOYMENT,
    ("apps", "replicasets"): sw.REPLICA_SET,
    ("apps", "statefulsets"): sw.STATEFUL_SET,
    ("apps", "daemonsets"): sw.DAEMON_SET,
    ("apps", "controllerrevisions"): sw.CONTROLLER_REVISION,
    ("batch", "jobs"): sw.JOB,
    ("batch", "cronjobs"): sw.CRON_JOB,
    ("networking.k8s.io", "ingresses"): sc.INGRESS,
    ("networking.k8s.io", "networkpolicies"): sc.NETWORK_POLICY,
    ("networking.k8s.io", "ingressclasses"): sc.INGRESS_CLASS,
    ("policy", "poddisruptionbudgets"): sc.POD_DISRUPTION_BUDGET,
    ("autoscaling", "horizontalpodautoscalers"): sw.HPA,
    ("coordination.k8s.io", "leases"): sc.LEASE,
    ("events.k8s.io", "events"): s.EVENT,
    ("certificates.k8s.io", "certificatesigningrequests"): scert.CSR,
    ("scheduling.k8s.io", "priorityclasses"): sc.PRIORITY_CLASS,
    ("node.k8s.io", "runtimeclasses"): sc.RUNTIME_CLASS,
    ("storage.k8s.io", "storageclasses"): sc.STORAGE_CLASS,
    ("storage.k8s.io", "csidrivers"): sc.CSI_DRIVER,
    ("apiextensions.k8s.io", "customresourcedefinitions"): sx.CRD,
    ("apiregistration.k8s.io", "apiservices"): sc.API_SERVICE,
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): swh.VALIDATING_WEBHOOK_CONFIGURATION,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): swh.MUTATING_WEBHOOK_CONFIGURATION,
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): sap.POLICY,
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): sap.BINDING,
    ("flowcontrol.apiserver.k8s.io", "flowschemas"): sfc.FLOW_SCHEMA,
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"): sfc.PRIORITY_LEVEL,
    ("rbac.authorization.k8s.io", "roles"): sc.ROLE,
    ("rbac.authorization.k8s.io", "clusterroles"): sc.CLUSTER_ROLE,
    ("rbac.authorization.k8s.io", "rolebindings"): sc.ROLE_BINDING,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): sc.CLUSTER_ROLE_BINDING,
}
# Served versions stored in another one, by (group, version, plural).
_CONVERTERS: dict[tuple[str, str, str], Converter] = {
    # autoscaling/v1 (`kubectl autoscale` writes it): the same objects, converted to and from v2.
    ("autoscaling", "v1", "horizontalpodautoscalers"): HPA_V1,
    # events.k8s.io/v1: the core/v1 Events themselves, seen through another group's fields.
    ("events.k8s.io", "v1", "events"): EVENTS_V1,
}
assert set(_STRATEGIES) <= {(k.group, k.plural) for k in KINDS}, "a strategy for no kind"
assert set(_CONVERTERS) <= {(k.group, k.version, k.plural) for k in KINDS}, "a converter for no kind"

RESOURCES: tuple[Resource, ...] = tuple(
    Resource.of(k, _STRATEGIES.get((k.group, k.plural), GENERIC), _CONVERTERS.get((k.group, k.version, k.plural)))
    for k in KINDS
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
