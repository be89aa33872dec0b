"""The cluster's own certificates near their end: the cluster CA (as the control plane's own
client trusts it) and the certificate each API server serves (read in a TLS handshake, as any
client sees it, so a server that renewed from disk is seen renewed). TLS Secrets, the ones
Ingresses serve, are :class:`bosun.alerting.builtin.CertificateExpiring`'s.

The handshake does not verify: an expired certificate is exactly what must be reported, and
verification would refuse to show it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

from bosun.alerting.builtin import ServedCertificates
from bosun.alerting.exprsource import Querier
from bosun.alerting.model import Candidate
from bosun.client.kubeconfig import ClusterConfig

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT = 5.0


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


async def served_certificate(url: str) -> x509.Certificate | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 443, ssl=ctx),
                                           HANDSHAKE_TIMEOUT)
    except (OSError, TimeoutError, ssl.SSLError) as e:
        log.debug("certificate of %s: %s", url, e)
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der) if der else None
    finally:
        writer.close()


@dataclass
class ClientCertificates:
    """The certificates of the cluster the control plane's own client talks to."""

    config: ClusterConfig

    async def certificates(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        if self.config.ca_data:
            try:
                for ca in x509.load_pem_x509_certificates(self.config.ca_data):
                    out.append((f"cluster CA {_cn(ca)}", ca.not_valid_after_utc.timestamp()))
            except ValueError as e:
                log.debug("cluster CA: %s", e)
        for url in dict.fromkeys([self.config.server, *self.config.servers]):
            cert = await served_certificate(url)
            if cert is not None:
                out.append((f"API server {urlsplit(url).netloc} {_cn(cert)}", cert.not_valid_after_utc.timestamp()))
        return out


@dataclass
class ClusterCertificateExpiring:
    """A certificate of the cluster itself that ends within ``soon`` seconds (or has ended),
    looked at every ``every`` seconds (a handshake per server)."""

    served: ServedCertificates | None
    name: str = "ClusterCertificateExpiring"
    soon: float = 30 * 86400.0
    every: float = 300.0
    found: list[tuple[str, float]] = field(default_factory=list)
    looked_at: float = 0.0

    async def refresh(self, querier: Querier, now: float) -> None:
        if self.served is None or (self.looked_at and now - self.looked_at < self.every):
            return
        self.looked_at = now
        self.found = await self.served.certificates()

    def active(self, now: float) -> Iterable[Candidate]:
        for what, ends in self.found:
            if ends - now > self.soon:
                continue
            left = "has expired" if ends <= now else f"expires in {int((ends - now) // 86400)} day(s)"
            yield Candidate({"certificate": what}, {"summary": f"The {what} certificate {left}"})
