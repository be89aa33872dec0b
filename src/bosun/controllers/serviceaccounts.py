"""ServiceAccount controller: every namespace has a ``default`` ServiceAccount and the
``kube-root-ca.crt`` ConfigMap (upstream's serviceaccount and root-ca-cert-publisher
controllers, which do these two jobs over the same namespaces).

Pods run as ``default`` unless they name another account, and their token volume carries
``ca.crt`` from that ConfigMap, so a client inside a pod can verify the API server it talks
to. Either object, deleted or edited, is put back.
"""

from __future__ import annotations

import logging

from bosun.api.registry import Resource
from bosun.client.errors import ApiError
from bosun.component import ComponentContext
from bosun.controllers._common import Controller, Obj, resource, split_key

log = logging.getLogger(__name__)

NAMESPACES = resource("", "v1", "namespaces")
ACCOUNTS = resource("", "v1", "serviceaccounts")
CONFIGMAPS = resource("", "v1", "configmaps")
DEFAULT_ACCOUNT = "default"
ROOT_CA = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
# Upstream marks the ConfigMap so that tools know it is published, not user data.
DESCRIPTION = "kubernetes.io/description"
DESCRIPTION_TEXT = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
                    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
                    "guaranteed across distributions of Kubernetes clusters.")


class ServiceAccountController(Controller):
    name = "serviceaccount"

    def __init__(self, ctx: ComponentContext) -> None:
        super().__init__(ctx)
        ca = ctx.client.config.ca_data
        self.ca_pem = ca.decode() if ca else None
        self.ns_inf = ctx.informers.get(NAMESPACES)
        self.sa_inf = ctx.informers.get(ACCOUNTS)
        self.cm_inf = ctx.informers.get(CONFIGMAPS)
        self.ns_inf.add_handler(self._namespace, lambda _o, n: self._namespace(n), None)
        self.sa_inf.add_handler(None, lambda _o, n: self._owned(n, DEFAULT_ACCOUNT),
                                lambda o: self._owned(o, DEFAULT_ACCOUNT))
        self.cm_inf.add_handler(None, lambda _o, n: self._owned(n, ROOT_CA), lambda o: self._owned(o, ROOT_CA))

    def _namespace(self, ns: Obj) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _owned(self, obj: Obj, name: str) -> None:
        if obj["metadata"].get("name") == name and obj["metadata"].get("namespace"):
            self.queue.add(obj["metadata"]["namespace"])

    async def reconcile(self, key: str) -> None:
        _, ns_name = split_key(key)
        ns = self.ns_inf.get(None, ns_name)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return  # nothing may be created in a namespace going away
        if self.sa_inf.get(ns_name, DEFAULT_ACCOUNT) is None:
            await self._create(ACCOUNTS, ns_name, {"metadata": {"name": DEFAULT_ACCOUNT}})
        if self.ca_pem is not None:
            cm = self.cm_inf.get(ns_name, ROOT_CA)
            want = {ROOT_CA_KEY: self.ca_pem}
            if cm is None:
                await self._create(CONFIGMAPS, ns_name, {
                    "metadata": {"name": ROOT_CA, "annotations": {DESCRIPTION: DESCRIPTION_TEXT}}, "data": want})
            elif cm.get("data") != want:
                try:
                    await self.client.update(CONFIGMAPS, {**cm, "data": want}, ns_name)
                except ApiError as exc:
                    if exc.status == 409:
                        self.queue.add(key)
                    elif exc.status != 404:
                        raise

    async def _create(self, res: Resource, namespace: str, body: Obj) -> None:
        try:
            await self.client.create(res, body, namespace)
        except ApiError as exc:
            # 409: made meanwhile; 403: the namespace began terminating.
            if exc.status not in (403, 409):
                raise


async def run(ctx: ComponentContext) -> None:
    await ServiceAccountController(ctx).run()
