"""Kubernetes' certificate admission plugins, for CertificateSigningRequests:

- CertificateApproval: approving or denying (the ``approval`` subresource) needs the verb
  ``approve`` on ``signers`` (certificates.k8s.io) named by the request's signer, or by its
  domain (``example.com/*``);
- CertificateSigning: issuing (a new ``status.certificate``) needs ``sign`` the same way;
- CertificateSubjectRestriction: nobody may ask the API server's client signer for a
  certificate in ``system:masters`` (it would authenticate as an unrestricted admin).

Whether a user may is the cluster's authorizer's answer, given to :class:`SignerAccess`
once the server has one (the access control is built after the storage).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from bosun.api.admission.base import CREATE, UPDATE, Obj, Operation, Request
from bosun.api.errors import APIError
from bosun.api.registry import Resource, must_by_plural
from bosun.security.authz import Attributes, Authorizer
from bosun.security.identity import MASTERS, User

CSRS = must_by_plural("certificates.k8s.io", "v1", "certificatesigningrequests")
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"


@dataclass
class SignerAccess:
    """Asks the cluster's authorizer about verbs on signers; until it is given one, only
    ``system:masters`` (and the server itself) may."""

    authorizer: Authorizer | None = None

    def allowed(self, user: User | None, verb: str, signer: str) -> bool:
        if user is None or user.is_master:
            return True
        if self.authorizer is None:
            return False
        names = [signer]
        if "/" in signer:
            names.append(signer.split("/", 1)[0] + "/*")
        asks = (Attributes(user, verb, True, CSRS.group, "*", "signers", "", "", n) for n in names)
        return any(self.authorizer.authorize(a).allowed for a in asks)


def _forbidden(req: Request, why: str) -> APIError:
    """Upstream's admission refusal: ``<resource> "<name>" is forbidden: <why>``."""
    return APIError(403, "Forbidden", f'{req.res.group_plural} "{req.name}" is forbidden: {why}',
                    details={"name": req.name, "group": req.res.group, "kind": req.res.plural})


def _signer(obj: Obj) -> str:
    return str((obj.get("spec") or {}).get("signerName") or "")


class CertificateApproval:
    name = "CertificateApproval"
    mutating = False

    def __init__(self, access: SignerAccess) -> None:
        self.access = access

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == CSRS and operation == UPDATE and subresource == "approval"

    async def admit(self, req: Request) -> None:
        signer = _signer(req.old or req.obj)
        if not self.access.allowed(req.user, "approve", signer):
            raise _forbidden(req, f'user not permitted to approve requests with signerName "{signer}"')


class CertificateSigning:
    name = "CertificateSigning"
    mutating = False

    def __init__(self, access: SignerAccess) -> None:
        self.access = access

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == CSRS and operation == UPDATE and subresource == "status"

    async def admit(self, req: Request) -> None:
        before = ((req.old or {}).get("status") or {}).get("certificate")
        if (req.obj.get("status") or {}).get("certificate") == before:
            return
        signer = _signer(req.old or req.obj)
        if not self.access.allowed(req.user, "sign", signer):
            raise _forbidden(req, f'user not permitted to sign requests with signerName "{signer}"')


def _organizations(obj: Obj) -> list[str]:
    """The request's subject organizations; none when it does not parse (validation says so)."""
    try:
        pem = base64.b64decode(str((obj.get("spec") or {}).get("request") or ""), validate=True)
        csr = x509.load_pem_x509_csr(pem)
    except (binascii.Error, ValueError):
        return []
    return [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


class CertificateSubjectRestriction:
    name = "CertificateSubjectRestriction"
    mutating = False

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res == CSRS and operation == CREATE and subresource is None

    async def admit(self, req: Request) -> None:
        if _signer(req.obj) == CLIENT_SIGNER and MASTERS in _organizations(req.obj):
            raise _forbidden(req, f"use of {CLIENT_SIGNER} signer with {MASTERS} group is not allowed")
