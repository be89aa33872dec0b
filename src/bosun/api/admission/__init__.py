"""Admission: the ordered plugins every write passes after its kind's strategy.

:mod:`bosun.api.admission.base` defines the chain and the plugin protocol; each other module
is one plugin, but for the parts of two: :mod:`.policymatch` and :mod:`.policyset` serve
ValidatingAdmissionPolicy (:mod:`.policy`); :mod:`.webhooks` holds the admission webhooks' two
plugins, :mod:`.webhookmatch` which writes a webhook's rules pick, :mod:`.webhookcall` the
HTTPS call and :mod:`.webhooksource` the configurations read from the watch cache.
:func:`standard_chain` is the server's chain, in its order.
"""

from __future__ import annotations

from bosun.api.admission.alertrules import AlertRules
from bosun.api.admission.base import (
    CONNECT,
    CREATE,
    DELETE,
    UPDATE,
    AdmissionChain,
    Operation,
    Plugin,
    Reader,
    Request,
)
from bosun.api.admission.certificates import (
    CertificateApproval,
    CertificateSigning,
    CertificateSubjectRestriction,
    SignerAccess,
)
from bosun.api.admission.defaulttolerations import DefaultTolerationSeconds
from bosun.api.admission.limitranger import LimitRanger, LimitRangerDefaults
from bosun.api.admission.metrics import AdmissionMetrics
from bosun.api.admission.noderestriction import NodeRestriction
from bosun.api.admission.policy import ValidatingAdmissionPolicy
from bosun.api.admission.policyset import Policies
from bosun.api.admission.priority import Priority
from bosun.api.admission.publishedports import PublishedPorts
from bosun.api.admission.resourcequota import QuotaStore, ResourceQuotaAdmission
from bosun.api.admission.runtimeclass import RuntimeClass
from bosun.api.admission.serviceaccount import ServiceAccount, ServiceAccountCheck
from bosun.api.admission.serviceips import ServiceIPs
from bosun.api.admission.storageclass import DefaultStorageClass
from bosun.api.admission.webhookcall import Caller
from bosun.api.admission.webhooks import MutatingWebhooks, ValidatingWebhooks, Webhooks, WebhookSource
from bosun.api.allocators import ServiceAllocator


def standard_chain(reader: QuotaStore, services: ServiceAllocator, toleration_seconds: int = 300,
                   webhooks: Webhooks | None = None, *,
                   policies: Policies | None = None, signers: SignerAccess | None = None) -> AdmissionChain:
    """The server's chain, in upstream's order: in the mutating phase the built-in plugins,
    then the mutating webhooks; in the validating phase the built-in ones (the certificate
    plugins among them), then ValidatingAdmissionPolicy, then the validating webhooks, then
    ResourceQuota (so that what it charges is what every other plugin let through).
    ``webhooks``: where the admission webhooks' configurations are read and what calls them
    (None: no webhook is called); ``policies``: the ValidatingAdmissionPolicies to enforce,
    kept by the server from its watch cache (none when not given); ``signers``: who may
    approve and sign certificate requests (None: system:masters only)."""
    signers = signers or SignerAccess()
    policies = policies or Policies()  # also the watch cache's view LimitRanger and ResourceQuota read
    metrics = AdmissionMetrics()
    mutating_hooks = [MutatingWebhooks(webhooks, metrics)] if webhooks is not None else []
    validating_hooks = [ValidatingWebhooks(webhooks, metrics)] if webhooks is not None else []
    return AdmissionChain([NodeRestriction(), ServiceAccount(reader, policies), Priority(reader),
                           DefaultTolerationSeconds(toleration_seconds), DefaultStorageClass(reader),
                           LimitRangerDefaults(policies), LimitRanger(policies), ServiceAccountCheck(reader, policies),
                           RuntimeClass(reader), PublishedPorts(reader), ServiceIPs(services), AlertRules(),
                           CertificateApproval(signers), CertificateSigning(signers),
                           CertificateSubjectRestriction(), *mutating_hooks,
                           ValidatingAdmissionPolicy(policies, signers), *validating_hooks,
                           ResourceQuotaAdmission(reader, policies)], metrics)


__all__ = [
    "CONNECT", "CREATE", "DELETE", "UPDATE", "AdmissionChain", "AdmissionMetrics", "AlertRules", "Caller",
    "CertificateApproval", "CertificateSigning", "CertificateSubjectRestriction", "DefaultStorageClass",
    "DefaultTolerationSeconds", "MutatingWebhooks", "NodeRestriction", "Operation", "Plugin", "Policies",
    "Priority", "PublishedPorts", "Reader", "Request", "RuntimeClass", "ServiceAccount", "ServiceAccountCheck",
    "ServiceIPs", "SignerAccess", "ValidatingAdmissionPolicy", "ValidatingWebhooks", "WebhookSource", "Webhooks",
    "standard_chain",
]
