"""Authentication and authorization of every API request, in one place the app's
middleware (HTTP and in-process alike) calls.

Holds the authenticator, the node and RBAC authorizers and their union, keeps the
authorizers current from the watch cache, creates the default roles at start and keeps
aggregated ClusterRoles' rules written back (as Kubernetes' aggregation controller).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import ssl
from typing import Any

from aiohttp import web

from bosun.aio import cancel_and_wait
from bosun.api import errors
from bosun.api.catalog import Catalog
from bosun.api.errors import APIError
from bosun.api.registry import Resource, must_by_plural
from bosun.api.requestinfo import attributes, forbidden
from bosun.api.storage import Storage
from bosun.api.target import decoded
from bosun.api.watchcache import CachedEvent, WatchCache
from bosun.security.authz import Union
from bosun.security.authz import rbac as rbac_mod
from bosun.security.authz.defaults import AUTOUPDATE, default_cluster_role_bindings, default_cluster_roles
from bosun.security.authz.node import NodeAuthorizer
from bosun.security.authz.rbac import RBACAuthorizer, aggregated_rules
from bosun.security.identity import ADMIN, User
from bosun.security.satokens import ServiceAccountTokens, looks_like_jwt, user_of
from bosun.security.tokens import TokenAuthenticator
from bosun.security.x509auth import user_of_certificate

log = logging.getLogger(__name__)

_G = rbac_mod.GROUP
_PODS, _CLAIMS, _ACCOUNTS = "pods", "persistentvolumeclaims", "serviceaccounts"
_INGRESSES = "ingresses.networking.k8s.io"
# What the node graph reads of a pod whose stored JSON has no nodeName: bound to no node.
_UNBOUND: dict[str, Any] = {}


def _res(group: str, plural: str) -> Resource:
    return must_by_plural(group, "v1", plural)


def _split_key(key: str) -> tuple[str, str]:
    parts = key.split("/")
    return (parts[3], parts[4]) if len(parts) == 5 else ("", parts[-1])


class AccessControl:
    def __init__(self, auth: TokenAuthenticator | None, storage: Storage, cache: WatchCache,
                 catalog: Catalog, service_accounts: ServiceAccountTokens | None = None) -> None:
        self.auth = auth
        self.catalog = catalog
        self.service_accounts = service_accounts
        # (namespace, name) -> uid of every ServiceAccount: a token bound to one that is gone
        # (or replaced by a namesake) is refused at once. A pod's uid is read from the watch
        # cache when a token bound to it is checked (see pod_uid).
        self._uids: dict[str, dict[tuple[str, str], str]] = {_ACCOUNTS: {}}
        self.storage = storage
        self.cache = cache
        self.rbac = RBACAuthorizer()
        self.node = NodeAuthorizer()
        self.authorizer = Union([self.node, self.rbac])
        storage.signers.authorizer = self.authorizer  # approving and signing CSRs (admission)
        self._aggregate_task: asyncio.Task[None] | None = None
        self._started = False

    # -- per request -------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> User:
        if self.auth is None:
            return ADMIN  # no TLS, no credentials: the local development mode
        # A client certificate the TLS layer verified comes first, as in kube-apiserver.
        transport = request.transport
        tls = transport.get_extra_info("ssl_object") if transport is not None else None
        der = tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
        if der:
            by_cert = user_of_certificate(der)
            if by_cert is not None:
                return by_cert
        header = request.headers.get("Authorization")
        user = self.auth.authenticate(header)
        if user is None and self.service_accounts is not None and header:
            token = header.partition(" ")[2].strip()
            if looks_like_jwt(token):
                claims = self.service_accounts.verify(token, self)
                user = user_of(claims) if claims is not None else None
        if user is None:
            raise errors.unauthorized()
        return user

    def account_uid(self, namespace: str, name: str) -> str | None:
        return self._uids[_ACCOUNTS].get((namespace, name))

    def pod_uid(self, namespace: str, name: str) -> str | None:
        """Read from the cache's current pods when a token bound to one is checked, not kept
        from every pod event: that kept each event decoded (every pod another API worker
        created, which this process never wrote) and alive as objects the collector scans."""
        entry = self.cache.resource(_PODS).get(_res("", _PODS).key(namespace, name))
        if type(entry) is not CachedEvent:  # none, or one no configured key opens
            return None
        uid = (entry.obj.get("metadata") or {}).get("uid")
        return str(uid) if uid else None

    async def check(self, request: web.Request) -> User:
        """The request's user, or an APIError (401, 403) saying why it may not proceed."""
        user = self.authenticate(request)
        self.authorize(request, user)
        return user

    def authorize(self, request: web.Request, user: User) -> None:
        """403 unless ``user`` may make this request (system:masters may make any)."""
        if user.is_master:
            return
        attrs = attributes(user, decoded(request, self.catalog))
        verdict = self.authorizer.authorize(attrs)
        if not verdict.allowed:
            raise forbidden(attrs, verdict.reason)
        # What a node may create is checked on the object itself, by the NodeRestriction
        # admission plugin (bosun.api.admission.noderestriction).

    # -- keeping current ---------------------------------------------------------------

    def observe(self, ev: CachedEvent) -> None:
        gp = ev.group_plural
        if gp == _PODS and ev.type != "DELETED" and ev.lacks(b'"nodeName"'):
            # Unbound (most pods' first event): the node graph needs no more of it than that.
            self._apply(gp, ev.key, _UNBOUND, ev.revision)
        elif gp in (_PODS, _CLAIMS, _ACCOUNTS, _INGRESSES) or gp in rbac_mod.KINDS:
            obj = None if ev.type == "DELETED" else ev.obj
            self._apply(gp, ev.key, obj, ev.revision)

    def _apply(self, gp: str, key: str, obj: dict[str, Any] | None, revision: int) -> None:
        ns, name = _split_key(key)
        if gp in self._uids:
            uid = (obj or {}).get("metadata", {}).get("uid") if obj is not None else None
            if uid:
                self._uids[gp][(ns, name)] = str(uid)
            else:
                self._uids[gp].pop((ns, name), None)
        if gp == _ACCOUNTS:
            return
        if gp == _PODS:
            self.node.observe_pod(key, ns, name, obj, revision)
        elif gp == _CLAIMS:
            self.node.observe_claim(key, ns, name, obj, revision)
        elif gp == _INGRESSES:
            self.node.observe_ingress(key, ns, name, obj, revision)
        else:
            self.rbac.observe(gp, key, obj, revision)
            if gp == rbac_mod.CLUSTER_ROLES and self._started:
                self._schedule_aggregation()

    async def start(self) -> None:
        """Subscribe, load what exists, and make sure the default roles are there."""
        self.cache.listeners.append(self.observe)
        for group, plural in (("", _PODS), ("", _CLAIMS), ("", _ACCOUNTS), ("networking.k8s.io", "ingresses"),
                              (_G, "roles"), (_G, "clusterroles"),
                              (_G, "rolebindings"), (_G, "clusterrolebindings")):
            res = _res(group, plural)
            items, _, _ = await self.storage.list(res, None)
            for obj in items:
                m = obj["metadata"]
                self._apply(res.group_plural, res.key(m.get("namespace"), m["name"]), obj,
                            int(m.get("resourceVersion") or 0))
        await self._ensure_defaults()
        self._started = True
        await self._aggregate()

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.cache.listeners.remove(self.observe)
        await cancel_and_wait(self._aggregate_task)

    async def _ensure_defaults(self) -> None:
        for res, objs in ((_res(_G, "clusterroles"), default_cluster_roles()),
                          (_res(_G, "clusterrolebindings"), default_cluster_role_bindings())):
            for want in objs:
                name = want["metadata"]["name"]
                try:
                    have = await self.storage.get(res, None, name)
                except APIError as exc:
                    if exc.code != 404:
                        raise
                    with contextlib.suppress(APIError):  # another server made it first
                        await self.storage.create(res, None, want)
                    continue
                if (have["metadata"].get("annotations") or {}).get(AUTOUPDATE) != "true":
                    continue
                fields = ("aggregationRule",) if "aggregationRule" in want else ("rules", "roleRef", "subjects")
                if any(have.get(f) != want.get(f) for f in fields if f in want):
                    updated = copy.deepcopy(have)
                    for f in fields:
                        if f in want:
                            updated[f] = want[f]
                    with contextlib.suppress(APIError):
                        await self.storage.update(res, None, name, updated)

    def _schedule_aggregation(self) -> None:
        if self._aggregate_task is None or self._aggregate_task.done():
            self._aggregate_task = asyncio.get_running_loop().create_task(self._aggregate_soon())

    async def _aggregate_soon(self) -> None:
        await asyncio.sleep(0.05)  # let a burst of role writes land first
        await self._aggregate()

    async def _aggregate(self) -> None:
        """Write each aggregated ClusterRole's rules back to it, so ``kubectl get -o yaml``
        and ``describe`` show what it grants."""
        res = _res(_G, "clusterroles")
        roles = list(self.rbac.objects[rbac_mod.CLUSTER_ROLES].values())
        for role in roles:
            rules = aggregated_rules(role, roles)
            if rules is None or rules == (role.get("rules") or []):
                continue
            name = role["metadata"]["name"]

            def put(current: dict[str, Any], rules: list[Any] = rules) -> dict[str, Any]:
                current["rules"] = rules
                return current

            try:
                await self.storage.mutate(res, None, name, put)
            except APIError as exc:
                log.debug("aggregating clusterrole %s: %s", name, exc.message)
