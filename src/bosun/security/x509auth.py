"""Client certificates as credentials (kube-apiserver's x509 authenticator).

The TLS layer has already checked the chain against the cluster CA (the listener asks for
an optional client certificate); what is left is upstream's mapping: the subject's common
name is the user, its organizations are the groups, and a certificate restricted to other
uses than client authentication authenticates nobody.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bosun.security.identity import User, authenticated


@lru_cache(maxsize=256)
def user_of_certificate(der: bytes) -> User | None:
    """The user a verified client certificate names; None when it names none (no common
    name) or may not be used to authenticate a client. Remembered: a client presents the
    same certificate on every connection."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages \
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
        return None
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names or not names[0]:
        return None
    groups = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return authenticated(str(names[0]), *groups)
