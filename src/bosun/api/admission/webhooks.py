"""Kubernetes' MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins: the
admission webhooks that Mutating- and ValidatingWebhookConfigurations register, called on
the writes they match.

Mutating webhooks run last in the mutating phase (after the built-in plugins), one after
another, each seeing what the one before changed; a JSONPatch in the answer is applied to
the object, and a webhook with ``reinvocationPolicy: IfNeeded`` is called once more when a
later webhook changed the object. As upstream, both kinds are asked about CREATE, UPDATE,
DELETE and CONNECT: a mutating webhook's patch of a CONNECT changes its options (the command
of an exec), one of a DELETE (which has no object) fails the request. Validating webhooks
run last in the validating phase, all at once. Each call follows upstream: a denial answers
the client with the webhook's status (``admission webhook "NAME" denied the request:
MESSAGE``), a webhook that cannot be reached in ``timeoutSeconds`` fails the write
(``failurePolicy: Fail``) or is passed over (``Ignore``), a dry run never calls a webhook
with side effects, warnings in the answer go to the client as ``Warning`` headers. Every call
is counted in the admission metrics (:mod:`.metrics`). A webhook's match conditions (CEL) are
evaluated on the review before it is sent. With ``matchPolicy: Equivalent`` a rule naming
another served version of the resource (autoscaling/v1 of a v2 HorizontalPodAutoscaler)
matches too, and the webhook is sent the object at that version. The review is
``admission.k8s.io/v1``, or v1beta1 for a webhook that lists only that. Writes of the
admissionregistration group itself are never sent to a webhook, so a broken webhook can
always be removed.

A webhook behind a Service is called at a ready endpoint's address (the control plane reaches
the pods' addresses; a Service's cluster IP is only programmed on the nodes), with TLS
verified for ``<service>.<namespace>.svc``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import jsonpatch

from bosun.api import errors
from bosun.api.admission.base import CONNECT, CREATE, DELETE, UPDATE, Operation, Request
from bosun.api.admission.metrics import APISERVER_INTERNAL_ERROR, CALLING_WEBHOOK_ERROR, NO_ERROR, AdmissionMetrics
from bosun.api.admission.webhookcall import Caller, CallError, Endpoint, Verdict
from bosun.api.admission.webhookmatch import (
    ConditionError,
    Webhook,
    conditions_hold,
    namespace_matches,
    objects_match,
)
from bosun.api.aggregation import endpoint_of
from bosun.api.errors import APIError
from bosun.api.objects import json_copy
from bosun.api.registry import RESOURCES, Resource, must_by_plural

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EXEMPT_GROUP = "admissionregistration.k8s.io"
NAMESPACES = must_by_plural("", "v1", "namespaces")
SERVICES = must_by_plural("", "v1", "services")
ENDPOINTS = must_by_plural("", "v1", "endpoints")
# Who writes when the server itself does (upstream's loopback identity).
SERVER_USER = {"username": "system:apiserver", "groups": ["system:masters"]}
_OPTIONS = {CREATE: "CreateOptions", UPDATE: "UpdateOptions", DELETE: "DeleteOptions"}


class WebhookSource(Protocol):
    """The configurations, compiled, and the current objects a call needs (namespaces,
    Services, Endpoints), from memory."""

    def webhooks(self, mutating: bool) -> Sequence[Webhook]: ...

    def current(self, res: Resource, namespace: str | None, name: str) -> Obj | None: ...


@dataclass(frozen=True, slots=True)
class Webhooks:
    """What the webhook plugins need: where the configurations are read, and the client
    that calls them (the server closes it when it stops)."""

    source: WebhookSource
    caller: Caller


class _Webhooks:
    mutating: bool
    kind: str  # the metrics' type label: upstream's "admit" or "validating"

    def __init__(self, webhooks: Webhooks, metrics: AdmissionMetrics | None = None) -> None:
        self.source = webhooks.source
        self.caller = webhooks.caller
        self.metrics = metrics or AdmissionMetrics()

    def handles(self, res: Resource, operation: Operation, subresource: str | None) -> bool:
        return res.group != EXEMPT_GROUP and operation in (CREATE, UPDATE, DELETE, CONNECT)

    def _matching(self, req: Request) -> list[tuple[Webhook, Resource]]:
        """The webhooks to call, each with the version of the resource it is sent (the
        request's, or with ``matchPolicy: Equivalent`` another served version its rules name)."""
        hooks = self.source.webhooks(self.mutating)
        if not hooks or req.finalizing:
            return []
        obj, old = _objects(req)
        ns_labels = self._namespace_labels(req)
        out = []
        for hook in hooks:
            view = _matched_version(hook, req)
            if view is not None and namespace_matches(hook, ns_labels) and objects_match(hook, obj, old):
                out.append((hook, view))
        return out

    def _namespace_labels(self, req: Request) -> dict[str, str] | None:
        if req.res == NAMESPACES:
            return dict((req.obj.get("metadata") or {}).get("labels") or {})  # on DELETE: the one deleted
        if not req.res.namespaced:
            return None
        ns = self.source.current(NAMESPACES, None, req.namespace or "")
        return dict(((ns or {}).get("metadata") or {}).get("labels") or {})

    async def _ask(self, hook: Webhook, view: Resource, req: Request, uid: str) -> tuple[Verdict, float] | None:
        """The webhook's verdict on the request, sent as ``view``, and when the call started;
        None: it was not called or its failure is ignored. Raises the APIError the client gets
        when the write must fail. A verdict that lets the write through is counted by the
        caller (:meth:`_answered`), once it has used it."""
        review = admission_review(req, uid, view, hook.review_version)
        if hook.conditions:
            try:
                if not conditions_hold(hook, _cel_variables(review)):
                    return None
            except ConditionError as exc:
                self._failed(hook, str(exc))
                return None
        started = time.perf_counter()
        if req.dry_run and not hook.calls_on_dry_run():
            self._refused(hook, req, started, APISERVER_INTERNAL_ERROR, 0)
            raise errors.bad_request(f'admission webhook "{hook.name}" does not support dry run')
        try:
            endpoint = self._endpoint(hook)
            verdict = await self.caller.call(endpoint, str(hook.client.get("caBundle") or ""), hook.timeout,
                                             review, mutating=self.mutating)
        except CallError as exc:
            if hook.fail_closed:
                self._refused(hook, req, started, CALLING_WEBHOOK_ERROR, exc.code)
            else:
                self.metrics.observe_webhook(hook.name, self.kind, req.operation, time.perf_counter() - started,
                                             exc.code, False)
                self.metrics.failed_open(hook.name, self.kind)
            self._failed(hook, f"failed to call webhook: {exc}")
            return None
        for warning in verdict.warnings:
            req.warn(warning)
        if not verdict.allowed:
            refusal = denial(hook.name, verdict.status)
            self._refused(hook, req, started, NO_ERROR, refusal.code)
            raise refusal
        return verdict, started

    def _answered(self, hook: Webhook, req: Request, started: float) -> None:
        self.metrics.observe_webhook(hook.name, self.kind, req.operation, time.perf_counter() - started, 200, False)

    def _refused(self, hook: Webhook, req: Request, started: float, error_type: str, code: int) -> None:
        self.metrics.reject(hook.name, self.kind, req.operation, error_type, code)
        self.metrics.observe_webhook(hook.name, self.kind, req.operation, time.perf_counter() - started, code, True)

    def _failed(self, hook: Webhook, why: str) -> None:
        """Refuse the write (failurePolicy Fail) or log and go on (Ignore)."""
        message = f'failed calling webhook "{hook.name}": {why}'
        if hook.fail_closed:
            raise errors.internal(f"Internal error occurred: {message}")
        log.warning("%s (failurePolicy Ignore)", message)

    def _endpoint(self, hook: Webhook) -> Endpoint:
        url = hook.client.get("url")
        if isinstance(url, str):
            return Endpoint(url)
        ref = hook.client.get("service") or {}
        ns, name, port = str(ref.get("namespace")), str(ref.get("name")), int(ref.get("port") or 443)
        svc = self.source.current(SERVICES, ns, name)
        if svc is None:
            raise CallError(f'service "{name}" not found in namespace "{ns}"')
        where = endpoint_of(svc, self.source.current(ENDPOINTS, ns, name), port)
        if isinstance(where, tuple):
            raise CallError(where[1])
        path = str(ref.get("path") or "")
        return Endpoint(where + (path if path.startswith("/") else "/" + path if path else ""),
                        server_name=f"{name}.{ns}.svc")


class MutatingWebhooks(_Webhooks):
    name = "MutatingAdmissionWebhook"
    mutating = True
    kind = "admit"

    async def admit(self, req: Request) -> None:
        hooks = self._matching(req)
        if not hooks:
            return
        uid = str(uuid.uuid4())
        # Per IfNeeded webhook called: the object as it left it.
        left: list[tuple[Webhook, Resource, Obj]] = []
        for hook, view in hooks:
            await self._mutate(hook, view, req, uid)
            if hook.reinvoke:
                left.append((hook, view, json_copy(req.obj)))
        for hook, view, after in left:
            if req.obj != after:
                await self._mutate(hook, view, req, uid)

    async def _mutate(self, hook: Webhook, view: Resource, req: Request, uid: str) -> None:
        asked = await self._ask(hook, view, req, uid)
        if asked is None:
            return
        verdict, started = asked
        try:
            self._apply(hook, view, req, verdict)
        except APIError:
            self._refused(hook, req, started, APISERVER_INTERNAL_ERROR, 0)
            raise
        self._answered(hook, req, started)

    def _apply(self, hook: Webhook, view: Resource, req: Request, verdict: Verdict) -> None:
        if not verdict.patch:
            return
        if req.operation == DELETE:  # upstream: there is no object to patch
            raise errors.internal(f'Internal error occurred: admission webhook "{hook.name}" attempted to modify '
                                  "the object, which is not supported for this operation")
        connect = req.operation == CONNECT  # the options (PodExecOptions...), never converted
        try:
            patched = jsonpatch.apply_patch(req.obj if connect else _as_seen(view, req.obj), verdict.patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
            raise errors.internal(f'Internal error occurred: admission webhook "{hook.name}" returned a patch '
                                  f"that does not apply: {exc}") from exc
        if not isinstance(patched, dict):
            raise errors.internal(f'Internal error occurred: admission webhook "{hook.name}" patched the '
                                  "object into something else than an object")
        if view.converter is not None and not connect:
            patched = view.converter.to_storage(patched)
        # In place: the write path holds this dict.
        req.obj.clear()
        req.obj.update(patched)


class ValidatingWebhooks(_Webhooks):
    name = "ValidatingAdmissionWebhook"
    mutating = False
    kind = "validating"

    async def admit(self, req: Request) -> None:
        hooks = self._matching(req)
        if not hooks:
            return
        uid = str(uuid.uuid4())
        results = await asyncio.gather(*(self._validate(h, view, req, uid) for h, view in hooks),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _validate(self, hook: Webhook, view: Resource, req: Request, uid: str) -> None:
        asked = await self._ask(hook, view, req, uid)
        if asked is not None:
            self._answered(hook, req, asked[1])


def denial(webhook: str, status: Obj) -> APIError:
    """Upstream's ``ToStatusErr``: the webhook's status, its message prefixed with who denied."""
    code = status.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    denied_by = f'admission webhook "{webhook}" denied the request'
    message, reason = status.get("message"), status.get("reason")
    if message:
        text = f"{denied_by}: {message}"
    elif reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    details = status.get("details")
    return APIError(code, str(reason or ""), text, details=details if isinstance(details, dict) else None)


def _matched_version(hook: Webhook, req: Request) -> Resource | None:
    res = req.res
    for candidate in (res, *(() if hook.exact else _equivalents(res))):
        if any(r.matches(req.operation, candidate.group, candidate.version, candidate.plural, req.subresource,
                         candidate.namespaced) for r in hook.rules):
            return candidate
    return None


@lru_cache(maxsize=256)
def _equivalents(res: Resource) -> tuple[Resource, ...]:
    """The other served versions of the resource (autoscaling/v1 of a v2
    HorizontalPodAutoscaler), each converting from the stored one."""
    return tuple(r for r in RESOURCES if r.group == res.group and r.plural == res.plural and r.converter is not None
                 and r.version != res.version)


def _as_seen(view: Resource, obj: Obj | None) -> Obj | None:
    """``obj`` (as stored) at the version a webhook is sent."""
    if obj is None or view.converter is None:
        return obj
    return view.converter.from_storage(json_copy(obj))


def admission_review(req: Request, uid: str, view: Resource | None = None,
                     api_version: str = "admission.k8s.io/v1") -> Obj:
    """The AdmissionReview of a write, sent as ``view`` (another served version of the
    request's resource, for a webhook matched by equivalence)."""
    res = req.res
    view = view or res
    kind = {"group": view.group, "version": view.version, "kind": view.kind}
    if req.operation == CONNECT:  # the options object's kind (PodExecOptions), as upstream sends it
        kind = {"group": "", "version": "v1", "kind": str(req.obj.get("kind") or "")}
    resource = {"group": view.group, "version": view.version, "resource": view.plural}
    request_kind = dict(kind) if req.operation == CONNECT else {"group": res.group, "version": res.version,
                                                                 "kind": res.kind}
    request_resource = {"group": res.group, "version": res.version, "resource": res.plural}
    obj, old = (_as_seen(view, o) for o in _objects(req))
    request: Obj = {
        "uid": uid, "kind": kind, "resource": resource, "requestKind": request_kind,
        "requestResource": request_resource,
        "name": req.name, "operation": req.operation,
        "userInfo": req.user.info() if req.user is not None else SERVER_USER,
        "object": obj, "oldObject": old, "dryRun": req.dry_run,
    }
    if req.operation in _OPTIONS:
        request["options"] = {"apiVersion": "meta.k8s.io/v1", "kind": _OPTIONS[req.operation],
                              **({"dryRun": ["All"]} if req.dry_run else {})}
    if req.subresource:
        request["subResource"] = request["requestSubResource"] = req.subresource
    if res.namespaced and req.namespace:
        request["namespace"] = req.namespace
    elif res == NAMESPACES:
        request["namespace"] = req.name  # upstream's attributes name a Namespace's own
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


def _objects(req: Request) -> tuple[Obj | None, Obj | None]:
    """(object, oldObject) as a review carries them: a DELETE has only the old one."""
    if req.operation == DELETE:
        return None, req.obj
    return req.obj, req.old


def _cel_variables(review: Obj) -> Obj:
    request = review["request"]
    return {"object": request["object"], "oldObject": request["oldObject"], "request": request}


