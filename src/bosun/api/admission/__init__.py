"""Admission: the ordered plugins every write passes after its kind's strategy.

:mod:`bosun.api.admission.base` defines the chain and the plugin protocol; each other module
is one plugin, but for the admission webhooks' parts: :mod:`.webhooks` holds their two plugins,
:mod:`.webhookmatch` which writes a webhook's rules pick, :mod:`.webhookcall` the HTTPS call
and :mod:`.webhooksource` the configurations read from the watch cache.
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
from bosun.api.admission.defaulttolerations import DefaultTolerationSeconds
from bosun.api.admission.noderestriction import NodeRestriction
from bosun.api.admission.priority import Priority
from bosun.api.admission.publishedports import PublishedPorts
from bosun.api.admission.runtimeclass import RuntimeClass
from bosun.api.admission.serviceaccount import ServiceAccount
from bosun.api.admission.serviceips import ServiceIPs
from bosun.api.admission.storageclass import DefaultStorageClass
from bosun.api.admission.webhookcall import Caller
from bosun.api.admission.webhooks import MutatingWebhooks, ValidatingWebhooks, Webhooks, WebhookSource
from bosun.api.allocators import ServiceAllocator


def standard_chain(reader: Reader, services: ServiceAllocator, toleration_seconds: int = 300,
                   webhooks: Webhooks | None = None) -> AdmissionChain:
    """The server's chain; ``webhooks``: where the admission webhooks' configurations are
    read and what calls them (None: no webhook is called), their plugins last in each
    phase, as upstream."""
    called = [MutatingWebhooks(webhooks), ValidatingWebhooks(webhooks)] if webhooks is not None else []
    return AdmissionChain([NodeRestriction(), ServiceAccount(reader), Priority(reader),
                           DefaultTolerationSeconds(toleration_seconds), DefaultStorageClass(reader),
                           RuntimeClass(reader), PublishedPorts(reader), ServiceIPs(services), AlertRules(),
                           *called])


__all__ = [
    "CONNECT", "CREATE", "DELETE", "UPDATE", "AdmissionChain", "AlertRules", "Caller", "DefaultStorageClass",
    "DefaultTolerationSeconds", "MutatingWebhooks", "NodeRestriction", "Operation", "Plugin",
    "Priority", "PublishedPorts",
    "Reader", "Request", "RuntimeClass", "ServiceAccount", "ServiceIPs", "ValidatingWebhooks", "WebhookSource",
    "Webhooks", "standard_chain",
]
