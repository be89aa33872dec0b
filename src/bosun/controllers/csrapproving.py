"""The CSR approving controller: kubelet client certificate requests are approved when their
requester may have them (kube-controller-manager's csrapproving, its SubjectAccessReview
approver).

A pending ``kubernetes.io/kube-apiserver-client-kubelet`` request whose content is a kubelet
client certificate's (organization exactly ``system:nodes``, common name ``system:node:...``, no
subject alternative names, usages exactly digital signature + client auth, with or without key
encipherment) is recognized as:

- ``selfnodeclient`` when its requester is the node it names (a renewal): the request's
  ``spec.username`` is the common name;
- ``nodeclient`` otherwise (a bootstrapper asking for a node's first certificate).

For each recognition, in that order, the API is asked with a SubjectAccessReview whether the
requester (the CSR's username, uid, groups, extra) may ``create`` ``certificatesigningrequests``
with that subresource in ``certificates.k8s.io``, which is what upstream's ClusterRoles
``system:certificates.k8s.io:certificatesigningrequests:nodeclient`` and ``...:selfnodeclient``
grant. The first one allowed approves the request (reason ``AutoApproved``, upstream's
messages) through the ``approval`` subresource. A recognized request nobody allowed is looked
at again later with growing pauses (a binding may come), as upstream retries it; any other
request is left alone for a person, or another approver, to decide.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from cryptography import x509

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import Controller, Obj, condition, resource, rfc3339
from bosun.security.signer import KUBELET_CLIENT, Refused, check_kubelet_client

log = logging.getLogger(__name__)

CSRS = resource("certificates.k8s.io", "v1", "certificatesigningrequests")
SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
# The usage sets upstream's ValidateKubeletClientCSR accepts (without RSA, no key encipherment).
USAGES = ({"digital signature", "key encipherment", "client auth"}, {"digital signature", "client auth"})
# (subresource the requester needs create on, condition message), tried in this order.
RECOGNIZERS = (
    ("selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview."),
    ("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."),
)
RETRY_FIRST, RETRY_MAX = 0.2, 300.0


def _undecided(csr: Obj) -> bool:
    return (not (csr.get("status") or {}).get("certificate") and condition(csr, "Approved") is None
            and condition(csr, "Denied") is None)


def is_kubelet_client(request: x509.CertificateSigningRequest, usages: list[str]) -> bool:
    """Upstream's IsKubeletClientCSR: what the signer accepts, with exactly its usages."""
    try:
        check_kubelet_client(request, usages)
    except Refused:
        return False
    return set(usages) in USAGES


def recognized(csr: Obj) -> list[tuple[str, str]]:
    """The recognizers ``csr`` matches, in the order they are tried."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != KUBELET_CLIENT:
        return []
    try:
        request = x509.load_pem_x509_csr(base64.b64decode(str(spec.get("request") or "")))
    except ValueError:
        return []
    if not is_kubelet_client(request, [str(u) for u in spec.get("usages") or []]):
        return []
    names = request.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    own = bool(names) and str(names[0].value) == spec.get("username")
    return [r for r in RECOGNIZERS if own or r[0] != "selfnodeclient"]


def access_review(csr: Obj, subresource: str) -> dict[str, Any]:
    """The SubjectAccessReview asking whether the requester may have ``subresource``."""
    spec = csr.get("spec") or {}
    review: dict[str, Any] = {
        "user": spec.get("username") or "", "groups": list(spec.get("groups") or []),
        "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                               "verb": "create", "subresource": subresource, "version": "*"}}
    if spec.get("uid"):
        review["uid"] = spec["uid"]
    if spec.get("extra"):
        review["extra"] = spec["extra"]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": review}


class CSRApprovingController(Controller):
    """Keyed by the CSR's name."""

    name = "csrapproving"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        self.csrs = ctx.informers.get(CSRS)
        self.csrs.add_handler(self._seen, lambda _old, new: self._seen(new), self._gone)
        self.denied_tries: dict[str, int] = {}

    def _seen(self, csr: Obj) -> None:
        if _undecided(csr) and (csr.get("spec") or {}).get("signerName") == KUBELET_CLIENT:
            self.enqueue(csr)

    def _gone(self, csr: Obj) -> None:
        self.denied_tries.pop(str((csr.get("metadata") or {}).get("name")), None)

    async def reconcile(self, key: str) -> None:
        csr = self.csrs.get(None, key)
        if csr is None or not _undecided(csr):
            self.denied_tries.pop(key, None)
            return
        tried = []
        for subresource, message in recognized(csr):
            tried.append(subresource)
            answer = await self.client.request("POST", SAR_PATH, body=access_review(csr, subresource))
            if (answer.get("status") or {}).get("allowed") is True:
                await self._approve(csr, message)
                self.denied_tries.pop(key, None)
                return
        if tried:
            tries = self.denied_tries[key] = self.denied_tries.get(key, 0) + 1
            log.debug("recognized csr %s as %s but subject access review was not approved", key, tried)
            self.queue.add_after(key, min(RETRY_FIRST * 2 ** (tries - 1), RETRY_MAX))

    async def _approve(self, csr: Obj, message: str) -> None:
        stamp = rfc3339()
        status = dict(csr.get("status") or {})
        status["conditions"] = [*(status.get("conditions") or []), {
            "type": "Approved", "status": "True", "reason": "AutoApproved", "message": message,
            "lastUpdateTime": stamp, "lastTransitionTime": stamp}]
        try:
            await self.client.update(CSRS, dict(csr, status=status), subresource="approval")
        except ApiError as e:
            if e.status not in (404, 409):
                raise
            # 409: the request changed meanwhile; its update event brings it back if still undecided
        else:
            log.info("approved CertificateSigningRequest %s: %s", csr["metadata"]["name"], message)


async def run(ctx: ComponentContext) -> None:
    await CSRApprovingController(ctx).run()
