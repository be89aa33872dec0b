"""The CSR signing controller: approved CertificateSigningRequests for the built-in signers
get their certificate, signed by the cluster CA (kube-controller-manager's csrsigning).

Only requests that are Approved, not Denied or Failed, and not yet issued are looked at;
a request its signer refuses is marked ``Failed`` (reason ``SignerValidationFailure``), and
requests for signers this cluster does not run are left alone, as upstream does. Without a
CA (a server without TLS) the controller has nothing to sign with and does nothing.
"""

from __future__ import annotations

import base64
import logging

from cryptography import x509

from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import Controller, Obj, condition, resource, rfc3339
from bosun.security.signer import SIGNERS, ClusterCA, Refused

log = logging.getLogger(__name__)

CSRS = resource("certificates.k8s.io", "v1", "certificatesigningrequests")


def _pending_issue(csr: Obj) -> bool:
    """Approved, neither Denied nor Failed, and without a certificate yet."""
    if (csr.get("status") or {}).get("certificate"):
        return False
    return (condition(csr, "Approved") is not None and condition(csr, "Denied") is None
            and condition(csr, "Failed") is None)


class CSRSigningController(Controller):
    """Keyed by the CSR's name."""

    name = "csrsigning"

    def __init__(self, ctx: ComponentContext, ca: ClusterCA) -> None:
        super().__init__(ctx)
        self.ca = ca
        self.csrs = ctx.informers.get(CSRS)
        self.csrs.add_handler(self._seen, lambda _old, new: self._seen(new))

    def _seen(self, csr: Obj) -> None:
        if _pending_issue(csr) and (csr.get("spec") or {}).get("signerName") in SIGNERS:
            self.enqueue(csr)

    async def reconcile(self, key: str) -> None:
        csr = self.csrs.get(None, key)
        if csr is None or not _pending_issue(csr):
            return
        spec = csr.get("spec") or {}
        check = SIGNERS.get(str(spec.get("signerName") or ""))
        if check is None:
            return
        usages = [str(u) for u in spec.get("usages") or []]
        try:
            request = x509.load_pem_x509_csr(base64.b64decode(str(spec.get("request") or "")))
            check(request, usages)
        except (Refused, ValueError) as exc:
            await self._fail(csr, str(exc))
            return
        seconds = spec.get("expirationSeconds")
        pem = self.ca.sign(request, usages, seconds if isinstance(seconds, int) else None)
        status = dict(csr.get("status") or {}, certificate=base64.b64encode(pem).decode())
        await self._write_status(csr, status)
        log.info("issued a certificate for CertificateSigningRequest %s (%s)", key, spec.get("signerName"))

    async def _fail(self, csr: Obj, message: str) -> None:
        stamp = rfc3339()
        status = dict(csr.get("status") or {})
        status["conditions"] = [*(status.get("conditions") or []), {
            "type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": message,
            "lastUpdateTime": stamp, "lastTransitionTime": stamp}]
        await self._write_status(csr, status)

    async def _write_status(self, csr: Obj, status: Obj) -> None:
        """PUT the status at the version read: a request changed meanwhile is looked at again."""
        body = dict(csr, status=status)
        try:
            await self.client.update(CSRS, body, subresource="status")
        except ApiError as e:
            if e.status == 404:
                return
            raise


async def run(ctx: ComponentContext) -> None:
    signing = ctx.options.cluster_signing
    if signing is None:
        return
    await CSRSigningController(ctx, ClusterCA.load(*signing)).run()
