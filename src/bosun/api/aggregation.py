"""Where an aggregated APIService's requests go, and whether its server answers discovery.

Shared by the APIService availability check (:mod:`bosun.controllers.apiservices`) and the
API server's proxy to aggregated APIs (:mod:`bosun.api.aggregator`): both resolve the
Service's port to a ready endpoint address and speak TLS to it as kube-aggregator does,
verifying the serving certificate for ``<service>.<namespace>.svc`` against ``caBundle``
(or not at all with ``insecureSkipTLSVerify``).
"""

from __future__ import annotations

import base64
import binascii
import ssl
from typing import Any

import aiohttp

Obj = dict[str, Any]
CHECK_TIMEOUT = 5.0


def endpoint_of(svc: Obj, endpoints: Obj | None, port: int) -> str | tuple[str, str]:
    """``https://address:port`` of a ready endpoint behind the Service's ``port``, or
    (reason, message) saying why there is none, in upstream's words."""
    m = svc.get("metadata") or {}
    name, ns = m.get("name"), m.get("namespace")
    sport = next((p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") == port), None)
    if sport is None:
        return "ServicePortError", f'service/{name} in "{ns}" is not listening on port {port}'
    if endpoints is None:
        return "EndpointsNotFound", f'cannot find endpoints for service/{name} in "{ns}"'
    port_name = str(sport.get("name") or "")
    for subset in endpoints.get("subsets") or []:
        eport = next((p for p in subset.get("ports") or [] if str(p.get("name") or "") == port_name), None)
        addresses = subset.get("addresses") or []
        if eport is not None and addresses:
            ip = str(addresses[0].get("ip"))
            host = f"[{ip}]" if ":" in ip else ip
            return f"https://{host}:{eport.get('port')}"
    return "MissingEndpoints", f'endpoints for service/{name} in "{ns}" have no addresses with port name "{port_name}"'


def tls_context(spec: Obj) -> ssl.SSLContext | str:
    """The client TLS context an APIService asks for, or why its caBundle is unusable."""
    if spec.get("insecureSkipTLSVerify"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    bundle = spec.get("caBundle")
    if not bundle:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError) as exc:
        return f"spec.caBundle holds no usable PEM certificate: {exc}"


def server_name(spec: Obj) -> str:
    ref = spec.get("service") or {}
    return f"{ref.get('name')}.{ref.get('namespace')}.svc"


async def discovery_check(base: str, spec: Obj) -> tuple[bool, str]:
    """GET the group version's discovery document from ``base``: (answered 2xx, why not)."""
    url = f"{base}/apis/{spec.get('group')}/{spec.get('version')}"
    ctx = tls_context(spec)
    if isinstance(ctx, str):
        return False, f"failing or missing response from {url}: {ctx}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT)) as session, \
                session.get(url, ssl=ctx, server_hostname=server_name(spec)) as resp:
            if 200 <= resp.status < 300:
                return True, ""
            return False, f"failing or missing response from {url}: bad status from {url}: {resp.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return False, f'failing or missing response from {url}: Get "{url}": {exc}'
