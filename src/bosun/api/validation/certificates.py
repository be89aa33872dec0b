"""CertificateSigningRequest (certificates.k8s.io/v1): upstream's rules and messages
(``pkg/apis/certificates/validation``), the request parsed with ``cryptography``."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from bosun.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import dns1123_label, validate_object_meta

if TYPE_CHECKING:
    from cryptography import x509

Obj = dict[str, Any]

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
USAGES = sorted({
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
    "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
})
LEGACY_SIGNER = "kubernetes.io/legacy-unknown"
MIN_EXPIRATION_SECONDS = 600
SUBDOMAIN_MAX = 253


def decode_bytes(value: Any) -> bytes | None:
    """A ``[]byte`` field as JSON carries it (base64); None when it is not that."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_request(pem: bytes) -> x509.CertificateSigningRequest:
    """The request in a PEM ``CERTIFICATE REQUEST`` block, its signature checked; ValueError
    says what is wrong in upstream's words."""
    if not pem.lstrip().startswith(b"-----BEGIN CERTIFICATE REQUEST-----"):
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    from cryptography import x509  # imported for CSRs only: the CLI imports the validation too

    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise ValueError(f"x509: malformed certificate request: {exc}") from exc
    if not csr.is_signature_valid:
        raise ValueError("x509: signature verification failure")
    return csr


def validate_signer_name(path: str, name: str) -> list[FieldError]:
    """A fully qualified domain and a path: ``example.com/signer-name``."""
    if not name:
        return [required(path)]
    segments = name.split("/")
    if len(segments) != 2:
        return [invalid(path, name, "must be a fully qualified domain and path of the form "
                                    "'example.com/signer-name'")]
    domain, rest = segments
    errs: list[FieldError] = []
    if len(domain) > SUBDOMAIN_MAX:
        errs.append(FieldError("FieldValueTooLong", path, f"must have at most {SUBDOMAIN_MAX} bytes", domain, True))
    labels = domain.split(".")
    for lbl in labels:
        msgs = dns1123_label(lbl)
        if msgs:
            errs += [invalid(path, domain, f'validating label "{lbl}": {m}') for m in msgs]
            break
    if len(labels) < 2:
        errs.append(invalid(path, domain, "should be a domain with at least two segments separated by dots"))
    for lbl in rest.split("."):
        msgs = dns1123_label(lbl)
        if msgs:
            errs += [invalid(path, rest, f'validating label "{lbl}": {m}') for m in msgs]
            break
    most = SUBDOMAIN_MAX - len(domain) - 1
    if len(rest) > most:
        errs.append(FieldError("FieldValueTooLong", path, f"must have at most {most} bytes", rest, True))
    return errs


def conditions_of(obj: Obj) -> list[Obj]:
    status = obj.get("status")
    conds = status.get("conditions") if isinstance(status, dict) else None
    return [c for c in conds if isinstance(c, dict)] if isinstance(conds, list) else []


def has_condition(obj: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype for c in conditions_of(obj))


def validate_conditions(c: Checker, obj: Obj) -> None:
    path = "status.conditions"
    status = c.obj(obj, "status", "status") or {}
    seen: set[str] = set()
    approved = denied = False
    for i, cond in c.objects(status, "conditions", path):
        p = index(path, i)
        ctype = c.text(cond, "type", child(p, "type")) or ""
        if not ctype:
            c.add(required(child(p, "type")))
        value = c.text(cond, "status", child(p, "status")) or ""
        if value not in ("True", "False", "Unknown"):
            c.add(not_supported(child(p, "status"), value, ["False", "True", "Unknown"]))
        if ctype in (APPROVED, DENIED):
            approved, denied = approved or ctype == APPROVED, denied or ctype == DENIED
            if value != "True":
                c.add(invalid(child(p, "status"), value, f"{ctype} condition may only be set to True"))
        if ctype in seen:
            c.add(duplicate(child(p, "type"), ctype))
        seen.add(ctype)
        for f in ("reason", "message", "lastUpdateTime", "lastTransitionTime"):
            c.text(cond, f, child(p, f))
    if approved and denied:
        c.add(invalid(path, "", "Approved and Denied conditions are mutually exclusive"))


def validate_certificate(c: Checker, obj: Obj) -> None:
    status = obj.get("status")
    raw = status.get("certificate") if isinstance(status, dict) else None
    if raw in (None, ""):
        return
    data = decode_bytes(raw)
    if data is None:
        c.add(invalid("status.certificate", "<certificate data>", "must be base64-encoded PEM data"))
        return
    from cryptography import x509  # see parse_request

    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        c.add(invalid("status.certificate", "<certificate data>", str(exc) or "invalid PEM certificate"))
        return
    if not certs:
        c.add(invalid("status.certificate", "<certificate data>", "must contain at least one CERTIFICATE PEM block"))


def validate_csr(c: Checker, obj: Obj) -> None:
    validate_object_meta(c, obj, _name_ok, namespaced=False)
    spec = c.obj(obj, "spec", "spec") or {}
    raw = spec.get("request")
    pem = decode_bytes(raw)
    if pem is None:
        c.add(invalid("spec.request", raw if isinstance(raw, str) else "",
                      "PEM block type must be CERTIFICATE REQUEST"))
    else:
        try:
            parse_request(pem)
        except ValueError as exc:
            c.add(invalid("spec.request", raw, str(exc)))
    usages = c.strings(spec, "usages", "spec.usages")
    if not usages:
        c.add(required("spec.usages", "usages must be provided"))
    seen: set[str] = set()
    for i, usage in enumerate(usages):
        if usage not in USAGES:
            c.add(not_supported(index("spec.usages", i), usage, USAGES))
        if usage in seen:
            c.add(duplicate(index("spec.usages", i), usage))
        seen.add(usage)
    signer = c.text(spec, "signerName", "spec.signerName") or ""
    if signer == LEGACY_SIGNER:
        c.add(invalid("spec.signerName", signer, "the legacy signerName is not allowed via this API version"))
    else:
        c.extend(validate_signer_name("spec.signerName", signer))
    seconds = c.integer(spec, "expirationSeconds", "spec.expirationSeconds")
    if seconds is not None and seconds < MIN_EXPIRATION_SECONDS:
        c.add(invalid("spec.expirationSeconds", seconds,
                      "may not specify a duration less than 600 seconds (10 minutes)"))
    c.text(spec, "username", "spec.username")
    c.text(spec, "uid", "spec.uid")
    c.strings(spec, "groups", "spec.groups")
    c.obj(spec, "extra", "spec.extra")
    validate_conditions(c, obj)
    validate_certificate(c, obj)


def _name_ok(value: str) -> list[str]:
    """Upstream's ValidateCertificateRequestName accepts any name path segments allow."""
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value] or (
        [f"may not be '{value}'"] if value in (".", "..") else [])


def kept_conditions(new: Obj, old: Obj) -> list[FieldError]:
    """An Approved, Denied or Failed condition, once there, stays (upstream's update rule)."""
    return [forbidden("status.conditions", f"updates may not remove the {t} condition")
            for t in (APPROVED, DENIED, FAILED) if has_condition(old, t) and not has_condition(new, t)]


def certificate_update(new: Obj, old: Obj) -> list[FieldError]:
    """A certificate is issued once, and only for an approved request."""
    before = (old.get("status") or {}).get("certificate") or ""
    after = (new.get("status") or {}).get("certificate") or ""
    if before == after:
        return []
    if before:
        return [forbidden("status.certificate", "updates may not modify existing certificate content")]
    if not has_condition(new, APPROVED):
        return [forbidden("status.certificate", "certificate issuance requires an Approved condition")]
    if has_condition(new, DENIED) or has_condition(new, FAILED):
        return [forbidden("status.certificate", "certificate issuance is not allowed for a Denied or Failed request")]
    return []
