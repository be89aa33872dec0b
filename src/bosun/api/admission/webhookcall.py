"""One call of an admission webhook: the ``admission.k8s.io/v1`` AdmissionReview sent over
HTTPS, and the response read as upstream reads it.

The server's certificate is verified against the webhook's ``caBundle`` (the system's roots
when it has none), for the URL's host or, for a Service, ``<name>.<namespace>.svc``, as
kube-apiserver does. Whatever keeps the call from giving an answer (refused connection,
timeout, bad TLS, a response that is not an AdmissionReview for this request) is a
:class:`CallError`, which the plugin weighs by the webhook's failure policy; a well-formed
answer is a :class:`Verdict`.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import aiohttp
import orjson

Obj = dict[str, Any]
REVIEW_API_VERSION = "admission.k8s.io/v1"
# The older form, for a webhook that lists only it in admissionReviewVersions: the same
# fields; its answers were never checked for kind or uid, and a patch's type defaults.
REVIEW_API_VERSION_BETA = "admission.k8s.io/v1beta1"


class CallError(Exception):
    """The webhook gave no usable answer (upstream's ``failed to call webhook: ...``); ``code``:
    the HTTP code the call is counted under (the webhook's own, or upstream's 503)."""

    def __init__(self, message: str, code: int = 503) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Endpoint:
    """Where to POST: the URL, and the name the server's certificate must carry (None: the
    URL's host)."""

    url: str
    server_name: str | None = None


@dataclass(slots=True)
class Verdict:
    allowed: bool
    status: Obj = field(default_factory=dict)
    patch: list[Any] | None = None
    warnings: list[str] = field(default_factory=list)


@lru_cache(maxsize=64)
def tls_context(ca_bundle: str) -> ssl.SSLContext:
    """A client context trusting ``ca_bundle`` (base64 PEM; empty: the system's roots)."""
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(ca_bundle, validate=True).decode()
        return ssl.create_default_context(cadata=pem)
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise CallError(f"caBundle holds no usable PEM certificate: {exc}") from exc


class Caller:
    """The webhooks' HTTP client: one session whose connections are kept alive between calls
    (a TLS handshake per write would cost more than the call itself), made on first use in
    the server's loop and closed with the server."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def call(self, endpoint: Endpoint, ca_bundle: str, seconds: float, review: Obj, *,
                   mutating: bool) -> Verdict:
        ctx = tls_context(ca_bundle)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return await call(self._session, endpoint, ctx, seconds, review, mutating=mutating)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def call(session: aiohttp.ClientSession, endpoint: Endpoint, ctx: ssl.SSLContext, seconds: float, review: Obj,
               *, mutating: bool) -> Verdict:
    url = f"{endpoint.url}?timeout={int(seconds)}s"
    try:
        async with session.post(url, data=orjson.dumps(review), ssl=ctx, server_hostname=endpoint.server_name,
                                timeout=aiohttp.ClientTimeout(total=seconds),
                                headers={"Content-Type": "application/json", "Accept": "application/json"}) as resp:
            body = await resp.read()
            status = resp.status
    except TimeoutError as exc:
        raise CallError(f'Post "{url}": context deadline exceeded') from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise CallError(f'Post "{url}": {exc}') from exc
    if not 200 <= status < 300:
        raise CallError(f"the server responded with status code {status}: {body[:200].decode(errors='replace')}",
                        status)
    return read_response(body, str(review["request"]["uid"]), mutating=mutating,
                         beta=review["apiVersion"] == REVIEW_API_VERSION_BETA)


def read_response(body: bytes, uid: str, *, mutating: bool, beta: bool = False) -> Verdict:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise CallError(f"the response is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CallError("the response is not an AdmissionReview")
    if not beta and (doc.get("apiVersion") != REVIEW_API_VERSION or doc.get("kind") != "AdmissionReview"):
        raise CallError(f'expected webhook response of {REVIEW_API_VERSION}, Kind=AdmissionReview, got '
                        f'{doc.get("apiVersion")}, Kind={doc.get("kind")}')
    resp = doc.get("response")
    if not isinstance(resp, dict):
        raise CallError("webhook response was absent")
    if not beta and resp.get("uid") != uid:
        raise CallError(f'expected response.uid="{uid}", got "{resp.get("uid")}"')
    patch: list[Any] | None = None
    raw_patch = resp.get("patch")
    if raw_patch:
        if not mutating:
            raise CallError("validating webhook may not return response.patch")
        patch_type = resp.get("patchType") or ("JSONPatch" if beta else "")
        if patch_type != "JSONPatch":
            if not patch_type:
                raise CallError("webhook returned response.patch but not response.patchType")
            raise CallError(f'webhook returned invalid response.patchType of "{patch_type}"')
        try:
            patch = json.loads(base64.b64decode(str(raw_patch)))
        except (binascii.Error, ValueError) as exc:
            raise CallError(f"response.patch is not a base64 JSON patch: {exc}") from exc
        if not isinstance(patch, list):
            raise CallError("response.patch is not a JSON patch (a list of operations)")
    warnings = resp.get("warnings")
    status = resp.get("status")
    return Verdict(allowed=resp.get("allowed") is True, status=status if isinstance(status, dict) else {},
                   patch=patch, warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [])
