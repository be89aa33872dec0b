"""The swarm's three questions to a manager, answered over the API's own HTTPS port:

* ``GET /bosun/v1/swarm/ca`` (anyone): the cluster CA, which a joining machine checks against
  the digest in its token before it sends the token anywhere;
* ``POST /bosun/v1/swarm/join`` (a swarm join token, as ``system:bootstrappers``): which role
  the token joins as, with what that role needs: a worker gets every manager's URL (its agent
  moves between them), a manager the store to join (and, when the store is the managers' own
  etcd members, the etcd CA its member's certificates come from). A node already joined asks again with its
  own credential to learn of managers that joined after it;
* ``POST /bosun/v1/swarm/promotion`` (a node, with its own credential): what a manager joins
  with (the manager token and the store), answered only to a node that ``bosun node promote``
  gave the manager role: the promoted worker starts a control plane with it, as a manager
  that joined would;
* ``GET``/``POST /bosun/v1/swarm/join-tokens`` (the admin): the current tokens; POST
  ``{"rotate": "worker"|"manager"}`` replaces one.

Nothing is stored by a join: a refused token leaves no trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from bosun.api import errors
from bosun.api.httputil import json_response, parse_object, read_body
from bosun.api.registry import must_by_plural
from bosun.api.requestinfo import USER
from bosun.api.storage import Storage
from bosun.membership import MANAGER_LABEL, NAMESPACE, managers_of
from bosun.security.authz.defaults import SWARM_JOIN_PATH, SWARM_PROMOTION_PATH
from bosun.security.bootstrap import ROLES
from bosun.security.cluster import ClusterIdentity
from bosun.security.tokens import SWARM_MANAGER, SWARM_WORKER
from bosun.store import is_etcd
from bosun.store.etcdnode import SCHEME, etcd_ca

CA_PATH = "/bosun/v1/swarm/ca"
TOKENS_PATH = "/bosun/v1/swarm/join-tokens"
LEASES = must_by_plural("coordination.k8s.io", "v1", "leases")
NODES = must_by_plural("", "v1", "nodes")


class SwarmEndpoints:
    def __init__(self, cluster: ClusterIdentity | None, store_url: str, storage: Storage, data_dir: Path) -> None:
        self.cluster = cluster
        self.store_url = store_url
        self.storage = storage
        self.data_dir = data_dir

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(CA_PATH, self.ca)
        router.add_post(SWARM_JOIN_PATH, self.join)
        router.add_post(SWARM_PROMOTION_PATH, self.promotion)
        router.add_get(TOKENS_PATH, self.tokens)
        router.add_post(TOKENS_PATH, self.rotate)

    def _identity(self) -> ClusterIdentity:
        if self.cluster is None:
            raise errors.APIError(404, "NotFound", "this server is not a manager of a swarm: it has an identity of "
                                  "its own (start it with the manager join token to share the cluster's)")
        return self.cluster

    async def ca(self, request: web.Request) -> web.Response:
        return web.Response(body=self._identity().ca_pem, content_type="application/x-pem-file")

    async def join(self, request: web.Request) -> web.Response:
        self._identity()
        user = request[USER]
        managers, _, _ = await self.storage.list(LEASES, NAMESPACE)
        urls = [m.url for m in managers_of(managers) if m.alive and m.url]
        if user.name == SWARM_WORKER or user.node_name is not None:
            return json_response({"role": "worker", "managers": urls})
        if user.name == SWARM_MANAGER:
            self._etcd_only()
            return json_response({"role": "manager", "managers": urls, "store": self.store_url, **self._embedded()})
        raise errors.forbidden_request(f'forbidden: User "{user.name}" holds no swarm join token')

    async def promotion(self, request: web.Request) -> web.Response:
        ident = self._identity()
        node = request[USER].node_name
        if node is None:
            raise errors.forbidden_request(f'forbidden: User "{request[USER].name}" is not a node')
        obj = await self.storage.get(NODES, None, node)
        if MANAGER_LABEL not in (obj["metadata"].get("labels") or {}):
            raise errors.forbidden_request(f"forbidden: node {node} is not a manager (bosun node promote {node})")
        self._etcd_only()
        managers, _, _ = await self.storage.list(LEASES, NAMESPACE)
        urls = [m.url for m in managers_of(managers) if m.alive and m.url]
        return json_response({"role": "manager", "managers": urls, "store": self.store_url,
                              "token": ident.tokens()["manager"], **self._embedded()})

    def _embedded(self) -> dict[str, Any]:
        """For a swarm whose store is the managers' own etcd members: the etcd CA, from which
        the new manager issues its member's certificates (bosun.store.etcdnode)."""
        if not self.store_url.startswith(SCHEME):
            return {}
        ca, key = etcd_ca(self.data_dir)
        return {"etcdCA": ca.decode(), "etcdCAKey": key.decode()}

    def _etcd_only(self) -> None:
        if not is_etcd(self.store_url):
            raise errors.APIError(409, "Conflict", "this swarm keeps its state in SQLite on its first manager: "
                                  "managers can join only a swarm on etcd (bosun swarm init --store etcd://...)")

    async def tokens(self, request: web.Request) -> web.Response:
        self._admin(request)
        return json_response(self._identity().tokens())

    async def rotate(self, request: web.Request) -> web.Response:
        self._admin(request)
        ident = self._identity()
        body: dict[str, Any] = parse_object(await read_body(request), request.content_type)
        role = str(body.get("rotate") or "")
        if role not in ROLES:
            raise errors.bad_request(f"rotate: Unsupported value: {role!r}: supported values: \"worker\", \"manager\"")
        await ident.rotate(role)
        return json_response(ident.tokens())

    @staticmethod
    def _admin(request: web.Request) -> None:
        user = request[USER]
        if not user.is_master:
            raise errors.forbidden_request(f'forbidden: User "{user.name}" cannot see the swarm\'s join tokens')
